"""The API's OpenAPI 3.0.3 document, as a Python dict.

`build_spec` is served at /api/v1/openapi.json; `operations` flattens it
for the human docs page (/api/v1/docs), so both always say the same.
"""

from __future__ import annotations

import copy
import re

from markupsafe import Markup, escape

from webapp.jobs.store import JOB_KINDS, STATES
from webapp.web.schema import BUNDLE_IMPORT, GENERATION, STREAM, STREAM_CHANGE, TRAINING

PREFIX = "/api/v1"
METHODS = ("get", "post", "put", "patch", "delete")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _response(name: str) -> dict:
    return {"$ref": f"#/components/responses/{name}"}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


SCHEMAS: dict = {
    "Error": {
        "type": "object", "required": ["error", "message"],
        "description": "Every error: a short code and a sentence saying what to change.",
        "properties": {
            "error": {"type": "string", "example": "not_found",
                      "description": "bad_request, unauthorized, not_found, conflict, "
                                     "invalid, busy, internal_error, ..."},
            "message": {"type": "string", "example": "there is no job 'ab12'"},
        },
    },
    "ValidationErrorResponse": {
        "allOf": [_ref("Error"), {
            "type": "object", "required": ["fields"],
            "properties": {"fields": {
                "type": "object", "additionalProperties": {"type": "string"},
                "description": "What is wrong with each field, by field name.",
                "example": {"seconds": "length in seconds must be between 5 and 600"}}},
        }],
    },
    "BusyResponse": {
        "allOf": [_ref("Error"), {
            "type": "object",
            "properties": {"retry_after": {"type": "integer",
                                           "description": "Seconds to wait (also the "
                                                          "Retry-After header)."}},
        }],
    },
    "Part": {
        "type": "object", "required": ["name", "program", "is_drum"],
        "properties": {"name": {"type": "string", "example": "harmony"},
                       "program": {"type": "integer", "minimum": 0, "maximum": 127},
                       "is_drum": {"type": "boolean"}},
    },
    "StyleType": {
        "type": "object", "required": ["name", "program"],
        "description": "An instrument or kit the style offers (a General MIDI program).",
        "properties": {"name": {"type": "string", "example": "Distortion Guitar"},
                       "program": {"type": "integer", "minimum": 0, "maximum": 127},
                       "track": _nullable({"type": "string",
                                           "description": "The part it plays."})},
    },
    "Style": {
        "type": "object",
        "required": ["name", "origin", "description", "size_bytes", "conditioned",
                     "follows_chords", "parts", "types", "loads", "error"],
        "properties": {
            "name": {"type": "string", "example": "piano"},
            "origin": {"type": "string", "enum": ["shipped", "user"],
                       "description": "shipped with the server, or trained/imported here"},
            "description": {"type": "string"},
            "size_bytes": {"type": "integer"},
            "default_bpm": _nullable({"type": "number"}),
            "conditioned": {"type": "boolean",
                            "description": "true: the style takes `key` and `density`"},
            "follows_chords": {"type": "boolean",
                               "description": "true: the style takes `chords` and "
                                              "`form`; if not `conditioned`, its `key` "
                                              "is the key of its own progressions"},
            "metric": {"type": "boolean",
                       "description": "true: time is counted in beats, so notes sit on the "
                                      "bar lines at any tempo"},
            "time_signature": _nullable({"type": "string", "example": "4/4"}),
            "blend_styles": {"type": "array", "items": {"type": "string"},
                             "description": "the styles this one can blend with (`blend`): "
                                            "its base model's, itself included"},
            "style_mix": {"type": "object", "additionalProperties": {"type": "number"},
                          "description": "the style input this style plays by itself"},
            "default_controls": {"type": "object", "additionalProperties": True},
            "parts": {"type": "array", "items": _ref("Part")},
            "types": {"type": "array", "items": _ref("StyleType")},
            "metrics": {"type": "object", "additionalProperties": True},
            "provenance": {"type": "array",
                           "items": {"type": "object", "additionalProperties": True}},
            "loads": {"type": "boolean", "description": "false: the bundle is broken"},
            "error": _nullable({"type": "string",
                                "description": "why the bundle does not load"}),
            "card": {"type": "string", "description": "The model card (markdown); only "
                                                      "on a single style."},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "StyleList": {
        "type": "object", "required": ["styles"],
        "properties": {"styles": {"type": "array", "items": _ref("Style")}},
    },
    "StyleCreated": {
        "type": "object", "required": ["style"], "properties": {"style": _ref("Style")},
    },
    "Download": {
        "type": "object",
        "required": ["index", "midi", "notes", "wav", "mp3", "pianoroll", "stems"],
        "properties": {
            "index": {"type": "integer"},
            "midi": {"type": "string", "format": "uri-reference"},
            "notes": {"type": "string", "format": "uri-reference",
                      "description": "the notes as JSON (`Notes`), for a piano roll or player"},
            "wav": _nullable({"type": "string", "format": "uri-reference",
                              "description": "made on the first download; null when this "
                                             "server cannot make audio (the result's "
                                             "`audio_message` says why)"}),
            "mp3": _nullable({"type": "string", "format": "uri-reference",
                              "description": "as `wav`, encoded by LAME (192 kbit/s)"}),
            "pianoroll": {"type": "string", "format": "uri-reference",
                          "description": "a PNG picture, drawn on the first download"},
            "stems": {"type": "string", "format": "uri-reference",
                      "description": "a zip with each part alone (`downloadGeneration`)"},
        },
    },
    "Notes": {
        "type": "object",
        "description": "A variation's notes, as its MIDI file plays them: times in seconds "
                       "from the file's start.",
        "required": ["job", "variation", "seconds", "bpm", "tempos", "time_signature", "bars",
                     "sections", "chords", "parts"],
        "properties": {
            "job": {"type": "string"},
            "variation": {"type": "integer", "minimum": 0},
            "seconds": {"type": "number", "description": "the file's length (s)"},
            "bpm": {"type": "number", "description": "quarter notes per minute"},
            "tempos": {"type": "array", "items": {
                "type": "object", "required": ["time", "qpm"],
                "properties": {"time": {"type": "number"}, "qpm": {"type": "number"}}}},
            "time_signature": {
                "type": "object", "required": ["numerator", "denominator"],
                "properties": {"numerator": {"type": "integer"},
                               "denominator": {"type": "integer"}}},
            "bars": {"type": "array", "items": {"type": "number"},
                     "description": "the start (s) of every bar that begins before `seconds`; "
                                    "bar n (from 1) starts at bars[n - 1]"},
            "sections": {"type": "array", "description": "the file's markers; [] if none",
                         "items": {"type": "object", "required": ["name", "time"],
                                   "properties": {"name": {"type": "string",
                                                           "example": "Intro"},
                                                  "time": {"type": "number"}}}},
            "chords": {"type": "array", "description": "the chord symbols; [] if none",
                       "items": {"type": "object", "required": ["symbol", "time"],
                                 "properties": {"symbol": {"type": "string", "example": "Am"},
                                                "time": {"type": "number"}}}},
            "parts": {"type": "array", "description": "the file's tracks, in order",
                      "items": {
                          "type": "object",
                          "required": ["index", "name", "program", "is_drum", "channel",
                                       "notes"],
                          "properties": {
                              "index": {"type": "integer", "minimum": 0},
                              "name": {"type": "string", "example": "drums"},
                              "program": {"type": "integer", "minimum": 0, "maximum": 127},
                              "is_drum": {"type": "boolean"},
                              "channel": {"type": "integer", "minimum": 0, "maximum": 15,
                                          "description": "MIDI channel from 0 (9: drums)"},
                              "notes": {"type": "array", "description": "[start s, end s, "
                                                                        "pitch, velocity]",
                                        "items": {"type": "array", "minItems": 4,
                                                  "maxItems": 4,
                                                  "items": {"type": "number"}}}}}},
        },
    },
    "JobLinks": {
        "type": "object", "required": ["self", "events"],
        "properties": {"self": {"type": "string", "example": "/api/v1/jobs/3f2a9c0d1e4b5a67"},
                       "events": {"type": "string",
                                  "example": "/api/v1/jobs/3f2a9c0d1e4b5a67/events"},
                       "style": {"type": "string",
                                 "description": "a finished training's new style"}},
    },
    "Job": {
        "type": "object",
        "required": ["id", "kind", "state", "progress", "stage", "detail", "params",
                     "result", "error", "created_at", "links"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]+$", "example": "3f2a9c0d1e4b5a67"},
            "kind": {"type": "string", "enum": list(JOB_KINDS)},
            "state": {"type": "string", "enum": list(STATES)},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "stage": {"type": "string", "example": "generating"},
            "detail": {"type": "object", "additionalProperties": True,
                       "description": "Training: stage, step, steps, loss, loss_points, "
                                      "eta_seconds, elapsed_seconds."},
            "params": {"type": "object", "additionalProperties": True,
                       "description": "The checked parameters (a blank seed is chosen)."},
            "result": _nullable({
                "type": "object", "additionalProperties": True,
                "description": "Generation: style, seed, variations (best first when "
                               "scored), repairs, audio, audio_message. Training: "
                               "style, steps, validation_nll, mean_overlapping_area, "
                               "loss_points.",
                "properties": {"variations": {"type": "array", "items": _ref("Variation")},
                               "repairs": {"type": "integer", "minimum": 0,
                                           "description": "passages resampled because "
                                                          "they were silent or stuck"}}}),
            "error": _nullable({"type": "string"}),
            "cancel_requested": {"type": "boolean"},
            "created_at": {"type": "number", "description": "Unix time"},
            "started_at": _nullable({"type": "number"}),
            "finished_at": _nullable({"type": "number"}),
            "links": _ref("JobLinks"),
            "downloads": {"type": "array", "items": _ref("Download"),
                          "description": "A done generation's files, per variation."},
        },
    },
    "Variation": {
        "type": "object", "additionalProperties": True,
        "required": ["index", "midi_name", "note_count", "seconds"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "midi_name": {"type": "string", "example": "piano-30s-seed7.mid"},
            "note_count": {"type": "integer", "minimum": 0},
            "midi": {"type": "string", "description": "the MIDI file's storage key"},
            "notes": {"type": "string", "description": "the notes JSON's storage key"},
            "sequence": {"type": "string",
                         "description": "the storage key of the NoteSequence (protobuf)"},
            "events": {"type": "string", "description": "the storage key of the model's "
                                                        "events (int32 .npy, primer included)"},
            "sha256": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "SHA-256 of each stored file, by field; files made on "
                                      "download (wav, mp3, pianoroll, stems) join when made"},
            "seconds": {"type": "number", "minimum": 0},
            "score": {"allOf": [_ref("Score")], "nullable": True},
        },
    },
    "Score": {
        "type": "object",
        "description": "How well a variation fits its style, against the style's own real "
                       "music (perfrnn.scoring). Fractions are 0 to 1; null where the style "
                       "has no reference for a part.",
        "required": ["overall", "style", "on_beat", "in_key", "longest_silence",
                     "longest_repetition"],
        "properties": {
            "overall": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                                  "description": "the style match times one factor per "
                                                 "other part: 1 within the style's norm"}),
            "style": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                                "description": "probability a content-only style classifier "
                                               "gives the style (a blend: its styles)"}),
            "style_typical": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                                        "description": "the style match of the style's own "
                                                       "real music, on average"}),
            "on_beat": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                                  "description": "share of onsets on the sixteenth or "
                                                 "triplet grid (metric styles)"}),
            "in_key": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                                 "description": "share of pitched notes in one major or "
                                                "minor scale"}),
            "longest_silence": {"type": "number", "minimum": 0, "description": "seconds"},
            "silence_limit": _nullable({"type": "number", "description":
                                        "seconds: the 99th percentile of the style's "
                                        "silences"}),
            "longest_one_pitch": {"type": "number", "minimum": 0, "description":
                                  "seconds of one pitch struck again and again alone"},
            "one_pitch_limit": _nullable({"type": "number", "description":
                                          "seconds; null: no references, or no limit for "
                                          "the style"}),
            "longest_repetition": {"type": "number", "minimum": 0, "description":
                                   "seconds of one pattern of up to 4 onsets repeated"},
            "repetition_limit": _nullable({"type": "number", "description":
                                           "seconds; null: no references, or no limit for "
                                           "the style (a drum groove)"}),
            "polyphony": _nullable({"type": "number", "minimum": 0,
                                    "description": "pitches sounding when any sounds"}),
            "polyphony_range": _nullable({"type": "array", "items": {"type": "number"},
                                          "minItems": 2, "maxItems": 2,
                                          "description": "the style's 1st and 99th "
                                                         "percentiles"}),
            "defect": _nullable({
                "type": "object", "description": "a silence or stuck passage beyond the "
                                                 "style's norm that repair could not remove",
                "properties": {"kind": {"type": "string",
                                        "enum": ["silence", "one pitch", "repetition"]},
                               "start": {"type": "number"}, "seconds": {"type": "number"}}}),
        },
    },
    "Stream": {
        "type": "object",
        "required": ["id", "style", "state", "seconds", "listeners", "bpm", "temperature",
                     "seed", "audio_url", "midi_url"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "style": {"type": "string"},
            "state": {"type": "string", "enum": ["playing", "stopped"]},
            "seconds": {"type": "number", "minimum": 0, "description": "audio made so far"},
            "heard_seconds": {"type": "number", "minimum": 0,
                              "description": "about where the listener is (wall clock)"},
            "listeners": {"type": "integer", "minimum": 0},
            "bpm": {"type": "number", "description": "the tempo asked for"},
            "temperature": {"type": "number"},
            "seed": {"type": "integer"},
            "type": _nullable({"type": "string"}),
            "key": _nullable({"type": "string"}),
            "density": _nullable({"type": "number"}),
            "error": _nullable({"type": "string"}),
            "audio_url": {"type": "string", "description": "GET: the endless MP3"},
            "midi_url": {"type": "string", "description": "GET: what was heard, as MIDI"},
        },
    },
    "JobAccepted": {
        "type": "object", "required": ["job", "links"],
        "properties": {"job": _ref("Job"), "links": _ref("JobLinks")},
    },
    "ConflictResponse": {
        "allOf": [_ref("Error"), {"type": "object", "properties": {"job": _ref("Job")}}],
    },
    GENERATION.name: GENERATION.openapi(),
    STREAM.name: STREAM.openapi(),
    STREAM_CHANGE.name: STREAM_CHANGE.openapi(),
    "GenerationForm": GENERATION.openapi(uploads=True),
    TRAINING.name: TRAINING.openapi(uploads=True),
    BUNDLE_IMPORT.name: BUNDLE_IMPORT.openapi(uploads=True),
    "Preset": {
        "type": "object", "required": ["name", "description", "layers", "steps"],
        "properties": {"name": {"type": "string", "example": "quick"},
                       "description": {"type": "string"},
                       "layers": {"type": "array", "items": {"type": "integer"}},
                       "steps": {"type": "integer"}},
    },
    "PresetList": {
        "type": "object", "required": ["presets"],
        "properties": {"presets": {"type": "array", "items": _ref("Preset")}},
    },
    "EditRequest": {
        "type": "object", "required": ["kind"],
        "properties": {
            "kind": {"type": "string", "enum": ["regenerate", "extend"]},
            "variation": {"type": "integer", "minimum": 0, "default": 0,
                          "description": "which variation of the piece to edit"},
            "first_bar": {"type": "integer", "minimum": 1,
                          "description": "regenerate: the first bar, counted from 1"},
            "last_bar": {"type": "integer", "minimum": 1,
                         "description": "regenerate: the last bar (inclusive; default "
                                        "first_bar)"},
            "bars": {"type": "integer", "minimum": 1, "maximum": 64,
                     "description": "extend: bars to add at the end"},
            "parts": {"type": "array", "items": {"type": "string"},
                      "description": "regenerate only these parts (the style's part names); "
                                     "default every part"},
            "seed": {"type": "integer", "minimum": 0,
                     "description": "the new music's random seed (default: drawn)"},
            "temperature": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                            "description": "default: the piece's own"}},
        "example": {"kind": "regenerate", "first_bar": 3, "last_bar": 4, "parts": ["bass"],
                    "seed": 7},
    },
    "Version": {
        "type": "object", "required": ["id", "version", "kind", "state", "links"],
        "properties": {
            "id": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
            "kind": {"type": "string", "enum": ["generate", "regenerate", "extend"]},
            "first_bar": _nullable({"type": "integer"}),
            "last_bar": _nullable({"type": "integer"}),
            "bars": _nullable({"type": "integer"}),
            "parts": {"type": "array", "items": {"type": "string"}},
            "seed": _nullable({"type": "integer"}), "state": {"type": "string"},
            "created_at": {"type": "number"},
            "links": {"type": "object", "properties": {"self": {"type": "string"},
                                                       "page": {"type": "string"}}}},
    },
    "VersionList": {
        "type": "object", "required": ["versions"],
        "properties": {"versions": {"type": "array", "items": _ref("Version")}},
    },
}

RESPONSES: dict = {
    "BadRequest": {"description": "The body is not JSON or a form, or does not parse.",
                   "content": _json(_ref("Error"))},
    "Unauthorized": {"description": "TRAINING_TOKEN is set and was not given, or is wrong.",
                     "content": _json(_ref("Error"))},
    "NotFound": {"description": "No such thing (or its results expired).",
                 "content": _json(_ref("Error"))},
    "Invalid": {"description": "A field is wrong: `fields` says which and why.",
                "content": _json(_ref("ValidationErrorResponse"))},
    "Busy": {"description": "The queue is full; try again after Retry-After seconds.",
             "headers": {"Retry-After": {"schema": {"type": "integer"},
                                         "description": "seconds"}},
             "content": _json(_ref("BusyResponse"))},
    "TooLarge": {"description": "The upload is larger than MAX_CONTENT_LENGTH or has more "
                                "parts (files and fields) than MAX_FORM_PARTS.",
                 "content": _json(_ref("Error"))},
}

STREAM_ID = {"name": "stream_id", "in": "path", "required": True,
             "description": "the stream's id (16 hex digits)", "schema": {"type": "string"}}
JOB_ID = {"name": "job_id", "in": "path", "required": True,
          "description": "the job's id (hex)", "schema": {"type": "string"}}
STYLE_NAME = {"name": "name", "in": "path", "required": True,
              "description": "the style's name", "schema": {"type": "string"}}
TOKEN_NOTE = (" When the server sets TRAINING_TOKEN, send it as `Authorization: Bearer "
              "TOKEN` or `X-Training-Token: TOKEN`.")


def _accepted(what: str) -> dict:
    return {"description": f"The {what} job is queued; follow `links.self` or "
                           "`links.events`.",
            "headers": {"Location": {"schema": {"type": "string"},
                                     "description": "the job's URL"}},
            "content": _json(_ref("JobAccepted"))}


def _operations() -> dict:
    """paths -> method -> operation, with curl samples (`{base}` for the server).

    It is long because it is the document's table of operations, data rather
    than steps: one entry per route, read top to bottom like the API itself."""
    return {
        "/styles": {"get": {
            "operationId": "listStyles", "tags": ["styles"],
            "summary": "List the styles",
            "description": "Every style with its parts, types, controls and metrics; "
                           "broken bundles are listed with `loads: false` and `error`.",
            "responses": {"200": {"description": "The styles.",
                                  "content": _json(_ref("StyleList"))}},
            "x-curl": "curl {base}/api/v1/styles",
        }},
        "/styles/{name}": {"get": {
            "operationId": "getStyle", "tags": ["styles"], "summary": "One style",
            "description": "The style as listed, with its model card (markdown).",
            "parameters": [STYLE_NAME],
            "responses": {"200": {"description": "The style.", "content": _json(_ref("Style"))},
                          "404": _response("NotFound")},
            "x-curl": "curl {base}/api/v1/styles/piano",
        }},
        "/styles/{name}/bundle": {"get": {
            "operationId": "downloadBundle", "tags": ["styles"],
            "summary": "Download a style's .mag bundle",
            "description": "The bundle file, loadable by perfrnn and (single-part "
                           "styles) by Magenta.",
            "parameters": [STYLE_NAME],
            "responses": {"200": {"description": "The .mag file (attachment NAME.mag).",
                                  "content": {"application/octet-stream": {
                                      "schema": {"type": "string", "format": "binary"}}}},
                          "404": _response("NotFound")},
            "x-curl": "curl -OJ {base}/api/v1/styles/piano/bundle",
        }},
        "/streams": {"post": {
            "operationId": "createStream", "tags": ["radio"],
            "summary": "Start an endless radio stream in a style",
            "description": "Makes music without end, a few seconds ahead of the listener, "
                           "as one MP3 stream at `audio_url` (play it in an <audio> element, "
                           "VLC or a phone). A stream nobody listens to stops after about "
                           "10 s. 503 when every stream slot is taken (MAX_RADIO_STREAMS).",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("StreamRequest"),
                                     "example": {"style": "rock", "bpm": 120}}}},
            "responses": {"201": {"description": "Playing.", "content": _json(_ref("Stream"))},
                          "400": _response("BadRequest"), "422": _response("Invalid"),
                          "503": _response("Busy")},
            "x-curl": ("curl -X POST {base}/api/v1/streams -H 'Content-Type: "
                       "application/json' -d '{\"style\": \"rock\", \"bpm\": 120}'"),
        }},
        "/streams/{stream_id}": {
            "get": {
                "operationId": "getStream", "tags": ["radio"], "summary": "A stream's state",
                "description": "Seconds made, listeners, and the settings asked for.",
                "parameters": [STREAM_ID],
                "responses": {"200": {"description": "The stream.",
                                      "content": _json(_ref("Stream"))},
                              "404": _response("NotFound")},
                "x-curl": "curl {base}/api/v1/streams/STREAM_ID",
            },
            "patch": {
                "operationId": "changeStream", "tags": ["radio"],
                "summary": "Change tempo, creativity or controls live",
                "description": "Heard from the next chunk: a metric style's next bar line, "
                               "piano's next 2 s; within about 4 s of audio.",
                "parameters": [STREAM_ID],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("StreamChange"),
                                         "example": {"bpm": 132}}}},
                "responses": {"200": {"description": "The stream, with the new settings.",
                                      "content": _json(_ref("Stream"))},
                              "400": _response("BadRequest"), "404": _response("NotFound"),
                              "409": {"description": "The stream has stopped.",
                                      "content": _json(_ref("Error"))},
                              "422": _response("Invalid")},
                "x-curl": ("curl -X PATCH {base}/api/v1/streams/STREAM_ID -H 'Content-Type: "
                           "application/json' -d '{\"bpm\": 132}'"),
            },
            "delete": {
                "operationId": "deleteStream", "tags": ["radio"], "summary": "Stop a stream",
                "description": "Stops the music and frees the stream's slot at once.",
                "parameters": [STREAM_ID],
                "responses": {"204": {"description": "Stopped."},
                              "404": _response("NotFound")},
                "x-curl": "curl -X DELETE {base}/api/v1/streams/STREAM_ID",
            },
        },
        "/streams/{stream_id}/audio": {"get": {
            "operationId": "streamAudio", "tags": ["radio"], "summary": "The endless audio",
            "description": "MP3 (128 kbit/s, 44.1 kHz stereo) from the live edge on, in bytes "
                           "as they are made; it ends only when the stream stops. At most "
                           "2 listeners a stream.",
            "parameters": [STREAM_ID],
            "responses": {"200": {"description": "An endless MP3 stream.",
                                  "content": {"audio/mpeg": {
                                      "schema": {"type": "string", "format": "binary"}}}},
                          "404": _response("NotFound"), "503": _response("Busy")},
            "x-curl": "curl -N {base}/api/v1/streams/STREAM_ID/audio | mpg123 -",
        }},
        "/streams/{stream_id}/midi": {"get": {
            "operationId": "streamMidi", "tags": ["radio"],
            "summary": "What was heard so far, as MIDI",
            "description": "The notes of the stream so far (the last `minutes`, at most 30), "
                           "as a MIDI file at the current tempo that starts on a bar line.",
            "parameters": [STREAM_ID, {
                "name": "minutes", "in": "query", "required": False,
                "description": "how far back (default: 30)",
                "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                           "maximum": 30}}],
            "responses": {"200": {"description": "The MIDI file (attachment).",
                                  "content": {"audio/midi": {
                                      "schema": {"type": "string", "format": "binary"}}}},
                          "404": _response("NotFound"),
                          "409": {"description": "Nothing has played yet, or the stream "
                                                 "stopped.",
                                  "content": _json(_ref("Error"))},
                          "422": _response("Invalid")},
            "x-curl": "curl -OJ '{base}/api/v1/streams/STREAM_ID/midi?minutes=5'",
        }},
        "/generations": {"post": {
            "operationId": "createGeneration", "tags": ["generations"],
            "summary": "Generate music",
            "description": "Queues a generation. Send JSON, or multipart/form-data to "
                           "upload a `primer` (music to continue). Follow the job with "
                           "GET /jobs/{job_id} or its event stream.",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("GenerationRequest"),
                                     "example": {"style": "piano", "seconds": 30,
                                                 "seed": 1234}},
                "multipart/form-data": {"schema": _ref("GenerationForm")}}},
            "responses": {"202": _accepted("generation"), "400": _response("BadRequest"),
                          "413": _response("TooLarge"), "422": _response("Invalid"),
                          "503": _response("Busy")},
            "x-curl": ("curl -X POST {base}/api/v1/generations -H 'Content-Type: "
                       "application/json' -d '{\"style\": \"piano\", \"seconds\": 30, "
                       "\"seed\": 1234}'\n"
                       "curl -X POST {base}/api/v1/generations -F style=piano "
                       "-F seconds=60 -F primer=@melody.mid"),
        }},
        "/jobs/{job_id}": {
            "get": {
                "operationId": "getJob", "tags": ["jobs"], "summary": "A job's state",
                "description": "State, progress and result; a done generation adds "
                               "`downloads` with each variation's file URLs.",
                "parameters": [JOB_ID],
                "responses": {"200": {"description": "The job.", "content": _json(_ref("Job"))},
                              "404": _response("NotFound")},
                "x-curl": "curl {base}/api/v1/jobs/JOB_ID",
            },
            "delete": {
                "operationId": "cancelJob", "tags": ["jobs"], "summary": "Cancel a job",
                "description": "A queued job is cancelled at once; a running one is asked "
                               "to stop (`cancel_requested`) and soon becomes cancelled.",
                "parameters": [JOB_ID],
                "responses": {"202": {"description": "Cancelled, or cancelling.",
                                      "content": _json(_ref("Job"))},
                              "404": _response("NotFound"),
                              "409": {"description": "The job has already finished.",
                                      "content": _json(_ref("ConflictResponse"))}},
                "x-curl": "curl -X DELETE {base}/api/v1/jobs/JOB_ID",
            },
        },
        "/jobs/{job_id}/events": {"get": {
            "operationId": "jobEvents", "tags": ["jobs"],
            "summary": "Follow a job live (Server-Sent Events)",
            "description": "`event: job` with the job's JSON at once and on every change of "
                           "state, progress, stage or detail; `: keepalive` comments every "
                           "15 s; the stream ends after the final state (or after "
                           "SSE_MAX_SECONDS: connect again). Use EventSource in a browser.",
            "parameters": [JOB_ID],
            "responses": {"200": {"description": "An event stream.",
                                  "content": {"text/event-stream": {
                                      "schema": {"type": "string"},
                                      "example": "event: job\ndata: {\"id\": \"...\", "
                                                 "\"state\": \"running\", \"progress\": "
                                                 "0.4}\n\n"}}},
                          "404": _response("NotFound")},
            "x-curl": "curl -N {base}/api/v1/jobs/JOB_ID/events",
        }},
        "/generations/{job_id}/{kind}": {"get": {
            "operationId": "downloadGeneration", "tags": ["generations"],
            "summary": "Download a generated file",
            "description": "- `midi` (attachment, e.g. rock-30s-seed1234.mid);\n"
                           "- `notes`: the notes as JSON (`Notes`);\n"
                           "- `wav`, `mp3` (attachments; 404 `no_audio` saying why when this "
                           "server makes no audio);\n"
                           "- `pianoroll` (PNG);\n"
                           "- `stems`: a zip (attachment, e.g. rock-30s-seed1234-stems.zip) "
                           "holding per part `NN-name.mid` (from 01, in the file's track order: "
                           "the conductor track with tempo, time signature, section markers "
                           "and chords, and that part's track alone), `NN-name.wav` (that part "
                           "alone, as long as the others) when this server makes audio and "
                           "the parts together last at most 1,200 s (else a README.txt says "
                           "why), and `all-parts.mid` (the `midi` file). At most 16 parts.\n\n"
                           "WAV, MP3, the piano roll and the stems are made on their first "
                           "download (which takes a moment) and kept with the result. May "
                           "redirect (302) to the storage's URL.",
            "parameters": [
                JOB_ID,
                {"name": "kind", "in": "path", "required": True, "description": "which file",
                 "schema": {"type": "string", "enum": ["midi", "notes", "wav", "mp3",
                                                       "pianoroll", "stems"]}},
                {"name": "variation", "in": "query", "required": False,
                 "description": "which variation, from 0",
                 "schema": {"type": "integer", "minimum": 0, "default": 0}}],
            "responses": {
                "200": {"description": "The file.", "content": {
                    "audio/midi": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": _ref("Notes")},
                    "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                    "audio/mpeg": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                "302": {"description": "Fetch the file from this Location.",
                        "headers": {"Location": {"schema": {"type": "string"}}}},
                "400": _response("BadRequest"),
                "404": _response("NotFound"),
                "409": {"description": "The job is not done.",
                        "content": _json(_ref("Error"))},
                "410": {"description": "The stored file was damaged or changed.",
                        "content": _json(_ref("Error"))},
                "422": {"description": "The file cannot be made from this music.",
                        "content": _json(_ref("Error"))},
                "503": {"description": "The file is still being made; try again.",
                        "content": _json(_ref("Error"))}},
            "x-curl": "curl -OJ '{base}/api/v1/generations/JOB_ID/stems?variation=0'",
        }},
        "/generations/{job_id}/edits": {"post": {
            "operationId": "editGeneration", "tags": ["generations"],
            "summary": "Edit a piece: regenerate bars (or parts), or extend it",
            "description": "Queues a new version of a finished generation. `regenerate` "
                           "resamples bars first_bar..last_bar (counted from 1, inclusive; "
                           "with `parts`, only those parts, the others fed as they are) and "
                           "keeps every note outside them; of several candidates, the one "
                           "that leads best into the music after them is kept. `extend` "
                           "adds `bars` bars at the end. The new job's result has one "
                           "variation; its job JSON names the version it edits (`edit.of`) "
                           "and its `version` (the original is 1). The same seed and edit "
                           "give the same bytes.",
            "parameters": [JOB_ID],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("EditRequest")}}},
            "responses": {"202": _accepted("generation"), "400": _response("BadRequest"),
                          "404": _response("NotFound"),
                          "409": {"description": "The piece is not done yet.",
                                  "content": _json(_ref("Error"))},
                          "422": _response("Invalid"), "503": _response("Busy")},
            "x-curl": ("curl -X POST {base}/api/v1/generations/JOB_ID/edits -H "
                       "'Content-Type: application/json' -d '{\"kind\": \"regenerate\", "
                       "\"first_bar\": 3, \"last_bar\": 4, \"parts\": [\"bass\"]}'"),
        }},
        "/generations/{job_id}/versions": {"get": {
            "operationId": "listVersions", "tags": ["generations"],
            "summary": "The versions of a piece",
            "description": "Every version from the original (version 1) to this one, "
                           "oldest first; undo is the version before.",
            "parameters": [JOB_ID],
            "responses": {"200": {"description": "The versions.",
                                  "content": _json(_ref("VersionList"))},
                          "404": _response("NotFound")},
            "x-curl": "curl {base}/api/v1/generations/JOB_ID/versions",
        }},
        "/trainings": {"post": {
            "operationId": "createTraining", "tags": ["trainings"],
            "summary": "Train a new style",
            "description": "Queues training a style on uploaded music (several files or "
                           "one zip)." + TOKEN_NOTE,
            "security": [{}, {"bearer": []}, {"trainingToken": []}],
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": _ref("TrainingForm"),
                                        "encoding": {"files": {"style": "form"}}}}},
            "responses": {"202": _accepted("training"), "400": _response("BadRequest"),
                          "401": _response("Unauthorized"), "413": _response("TooLarge"),
                          "422": _response("Invalid"), "503": _response("Busy")},
            "x-curl": ("curl -X POST {base}/api/v1/trainings -H 'Authorization: Bearer "
                       "TOKEN' -F name=mystyle -F preset=quick -F files=@song1.mid "
                       "-F files=@song2.mid"),
        }},
        "/trainings/presets": {"get": {
            "operationId": "listPresets", "tags": ["trainings"],
            "summary": "The training presets",
            "description": "The sizes a training can take, from a quick sketch to a GPU run.",
            "responses": {"200": {"description": "The presets.",
                                  "content": _json(_ref("PresetList"))}},
            "x-curl": "curl {base}/api/v1/trainings/presets",
        }},
        "/bundles": {"post": {
            "operationId": "importBundle", "tags": ["styles"],
            "summary": "Import a .mag bundle as a style",
            "description": "Adds a bundle (ours or Magenta's) after checking it loads."
                           + TOKEN_NOTE,
            "security": [{}, {"bearer": []}, {"trainingToken": []}],
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": _ref("BundleForm")}}},
            "responses": {"201": {"description": "The new style.",
                                  "headers": {"Location": {"schema": {"type": "string"}}},
                                  "content": _json(_ref("StyleCreated"))},
                          "400": _response("BadRequest"), "401": _response("Unauthorized"),
                          "413": _response("TooLarge"), "422": _response("Invalid")},
            "x-curl": ("curl -X POST {base}/api/v1/bundles -H 'Authorization: Bearer TOKEN' "
                       "-F bundle=@jazz.mag -F name=jazz"),
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["about"],
            "summary": "This API's OpenAPI document",
            "description": "The OpenAPI 3.0.3 description of every endpoint.",
            "responses": {"200": {"description": "The document.", "content": _json(
                {"type": "object", "additionalProperties": True})}},
            "x-curl": "curl {base}/api/v1/openapi.json",
        }},
        "/docs": {"get": {
            "operationId": "docs", "tags": ["about"], "summary": "This documentation",
            "description": "A page listing every endpoint, built from the OpenAPI document.",
            "responses": {"200": {"description": "An HTML page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}},
            "x-curl": "curl {base}/api/v1/docs",
        }},
    }


def build_spec(base_url: str = "") -> dict:
    """The OpenAPI document; `base_url` (e.g. http://localhost:5000) fills the
    server entry and the curl samples."""
    base = base_url.rstrip("/") or "http://localhost:5000"
    paths = {}
    for path, methods in _operations().items():
        entry = {}
        for method, operation in methods.items():
            operation = copy.deepcopy(operation)
            curl = operation.pop("x-curl").replace("{base}", base)
            operation["x-codeSamples"] = [{"lang": "curl", "source": curl}]
            responses = operation["responses"]
            responses.setdefault("500", {"description": "A bug: the server's log has the "
                                                        "details.",
                                         "content": _json(_ref("Error"))})
            entry[method] = operation
        paths[PREFIX + path] = entry
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Performance RNN styles API",
            "version": "1.0.0",
            "description": "Generate music in a trained style, follow the job, download "
                           "MIDI, WAV and a piano roll; train styles and import bundles. "
                           "Every error is JSON `{\"error\": code, \"message\": text}`. "
                           "Send `X-Client-Id` to group your jobs.",
        },
        "servers": [{"url": base}],
        "tags": [{"name": "styles"}, {"name": "generations"}, {"name": "jobs"},
                 {"name": "radio"}, {"name": "trainings"}, {"name": "about"}],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": copy.deepcopy(RESPONSES),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "the server's TRAINING_TOKEN"},
                "trainingToken": {"type": "apiKey", "in": "header",
                                  "name": "X-Training-Token"},
            },
        },
    }


def rich(text: str) -> Markup:
    """Description text as HTML: escaped, with `code` spans."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text or ""))))


def _resolve(spec: dict, item: dict) -> dict:
    while isinstance(item, dict) and "$ref" in item:
        node = spec
        for part in item["$ref"].lstrip("#/").split("/"):
            node = node[part]
        item = node
    return item


def _fields(spec: dict, schema: dict) -> list[dict]:
    """The properties of a (possibly allOf) object schema, for the docs table."""
    schema = _resolve(spec, schema)
    fields = []
    for part in schema.get("allOf", []):
        fields += _fields(spec, part)
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        prop = _resolve(spec, prop)
        kind = prop.get("type", "object")
        if kind == "array":
            kind = f"array of {_resolve(spec, prop.get('items', {})).get('type', 'object')}"
        if prop.get("format") == "binary":
            kind = "file" if kind == "string" else "files"
        limits = []
        if "enum" in prop:
            limits.append("one of " + ", ".join(str(value) for value in prop["enum"]))
        if "minimum" in prop or "maximum" in prop:
            limits.append(f"{prop.get('minimum', '')}..{prop.get('maximum', '')}")
        if "default" in prop:
            limits.append(f"default {prop['default']}")
        fields.append({"name": name, "type": kind, "required": name in required,
                       "description": rich(prop.get("description", "")),
                       "limits": "; ".join(limits)})
    return fields


def operations(spec: dict) -> list[dict]:
    """Each operation flattened for the docs page, in the document's order."""
    found = []
    for path, methods in spec["paths"].items():
        for method in METHODS:
            operation = methods.get(method)
            if operation is None:
                continue
            parameters = [{"name": parameter["name"], "in": parameter["in"],
                           "required": parameter.get("required", False),
                           "description": rich(parameter.get("description", "")),
                           "type": parameter.get("schema", {}).get("type", "string")}
                          for parameter in (_resolve(spec, p)
                                            for p in operation.get("parameters", []))]
            bodies = [{"content_type": content_type,
                       "fields": _fields(spec, media.get("schema", {}))}
                      for content_type, media in
                      operation.get("requestBody", {}).get("content", {}).items()]
            responses = [{"status": status,
                          "description": rich(_resolve(spec, response).get("description",
                                                                           ""))}
                         for status, response in operation["responses"].items()]
            found.append({
                "method": method.upper(), "path": path, "id": operation["operationId"],
                "summary": operation["summary"],
                "description": rich(operation.get("description", "")),
                "tag": (operation.get("tags") or ["other"])[0],
                "parameters": parameters, "bodies": bodies, "responses": responses,
                "examples": [sample["source"] for sample in operation.get("x-codeSamples", [])],
            })
    return found
