"""JSON API under /api/v1: styles, generations, jobs (with live events),
downloads, trainings and bundle imports.

Every answer is JSON (files aside); every error is
`{"error": code, "message": text}` with its 4xx/5xx status, a 422 adding
`"fields": {field: message}`. The OpenAPI document (webapp/web/openapi.py)
describes each route; /api/v1/docs shows it to people.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)

from perfrnn.errors import PerfRNNError
from webapp.jobs.downloads import (
    MADE_ON_DOWNLOAD,
    DownloadProblem,
    made_file,
    server_audio,
    stored_bytes,
)
from webapp.jobs.queues import QueueFull
from webapp.jobs.store import CANCELLED, DONE, EXPIRED
from webapp.radio import StreamsFull
from webapp.services import get_queue, get_services
from webapp.web.errors import api_error
from webapp.web.events import job_events
from webapp.web.owner import may_see, owner_id
from webapp.web.schema import BUNDLE_IMPORT, GENERATION, TRAINING
from webapp.web.security import training_token_is_right
from webapp.web.submit import (
    import_bundle,
    request_share,
    submit_generation,
    submit_training,
)
from webapp.web.validation import (
    EDIT_FIELDS,
    MAX_VERSIONS,
    ValidationError,
    edit_params,
    generation_params,
    style_types,
    training_params,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

JOB_ID = re.compile(r"[0-9a-f]{8,32}")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
FILES = {  # download kind -> (file name key, MIME type, as attachment); result key: kind
    "midi": ("midi_name", "audio/midi", True),
    "notes": (None, "application/json", False),
    "wav": ("wav_name", "audio/wav", True),
    "mp3": ("mp3_name", "audio/mpeg", True),
    "pianoroll": (None, "image/png", False),
    "stems": ("stems_name", "application/zip", True),
}


# ----- errors -------------------------------------------------------------------

@bp.errorhandler(ValidationError)
def _invalid(error: ValidationError):
    what = "invalid fields" if error.status == 422 else "files that are too large"
    return api_error(error.status, f"the request has {what}: {error}",
                     "invalid" if error.status == 422 else "too_large", fields=error.errors)


def _retry_later(message: str, retry_after: int):
    """503 with Retry-After (seconds), in the body too."""
    response, status = api_error(503, message, "busy", retry_after=retry_after)
    response.headers["Retry-After"] = str(retry_after)
    return response, status


@bp.errorhandler(QueueFull)
def _busy(error: QueueFull):
    return _retry_later(str(error), error.retry_after)


@bp.errorhandler(StreamsFull)
def _streams_full(error: StreamsFull):
    return _retry_later("every radio stream is taken; try again in a moment",
                        error.retry_after)


class _Problem(Exception):
    """An answer other than success: status, code and message (see api_error)."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request"):
        super().__init__(message)
        self.status, self.code = status, code


@bp.errorhandler(_Problem)
def _bad_request(error: _Problem):
    response, status = api_error(error.status, str(error), error.code)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="training"'
    return response, status


# ----- helpers ------------------------------------------------------------------

def _values(fields: tuple[str, ...], files: tuple[str, ...] = (),
            form_only: bool = False) -> tuple[dict, dict]:
    """The request's fields from a JSON object or a form, and an error for each
    unknown field (a misspelt field would otherwise be silently ignored)."""
    if request.mimetype in FORM_TYPES:
        if not all(request.form.keys()) or not all(request.files.keys()):
            raise _Problem("a part of the form has no name; name every part "
                           '(Content-Disposition: form-data; name="...")')
        values = {key: request.form.get(key) for key in request.form}
        present = set(values) | set(request.files)
    elif request.is_json and not form_only:
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            raise _Problem("the body is not a JSON object; send e.g. "
                              '{"style": "piano", "seconds": 30}')
        present = set(values)
    else:
        kinds = ("multipart/form-data" if form_only
                 else "application/json or multipart/form-data")
        raise _Problem(f"send the fields as {kinds} (the Content-Type was "
                          f"{request.mimetype or 'missing'!r})")
    known = ", ".join(fields + files)
    unknown = {name: f"unknown field; the fields are: {known}"
               for name in sorted(present - set(fields) - set(files))}
    return values, unknown


def _checked(errors: dict, check):
    """`check()`'s result; its ValidationError and `errors` reported together."""
    try:
        result = check()
    except ValidationError as error:
        raise ValidationError({**error.errors, **errors}) from None
    if errors:
        raise ValidationError(errors)
    return result


def _job_or_404(job_id: str):
    job = get_services().store.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None or not may_see(job):  # another client's job is not there for you
        raise _Problem(f"there is no job {job_id!r} (results are kept "
                          f"{current_app.config['RESULT_RETENTION_HOURS']} hours)",
                          404, "not_found")
    return job


def _links(job) -> dict:
    links = {"self": url_for("api.get_job", job_id=job.id),
             "events": url_for("api.job_stream", job_id=job.id)}
    if job.kind == "generation":
        links["versions"] = url_for("api.generation_versions", job_id=job.id)
        links["edits"] = url_for("api.create_edit", job_id=job.id)
    if job.kind == "training" and job.state == DONE and job.result:
        links["style"] = url_for("api.get_style", name=job.result["style"])
    return links


def job_json(job) -> dict:
    """The job as the API shows it: the store's dict, links and, for a finished
    generation, the URL of each file."""
    body = job.to_dict()
    body["cancel_requested"] = job.cancel_requested
    if job.kind == "generation":
        body["version"] = int(job.params.get("version", 1))
        body["edit"] = (dict(job.params["edit"], of=job.params["source"]["job"])
                        if job.params.get("edit") else None)
    body["links"] = _links(job)
    if job.kind == "generation" and job.state == DONE and job.result:
        audio, audio_message = server_audio(get_services())
        body["result"] = {**body["result"], "audio": audio, "audio_message": audio_message}
        body["downloads"] = [
            {"index": entry["index"],
             **{kind: (url_for("api.generation_file", job_id=job.id, kind=kind,
                               variation=entry["index"])
                       if audio or kind not in ("wav", "mp3") else None)
                for kind in FILES}}
            for entry in job.result.get("variations", [])]
    return body


def _accepted(job):
    body = job_json(job)
    response = jsonify({"job": body, "links": body["links"]})
    response.status_code = 202
    response.headers["Location"] = body["links"]["self"]
    return response


def style_json(style, card: bool = False) -> dict:
    """A style (perfrnn.registry.StyleEntry) as the API shows it."""
    bundle = style.bundle
    metadata = bundle.metadata if bundle is not None else None
    body = {
        "name": style.name, "origin": style.origin, "size_bytes": style.size_bytes,
        "description": metadata.description if metadata else "",
        "default_bpm": metadata.default_bpm if metadata else None,
        "conditioned": bool(bundle.encoding.control_signals) if bundle else False,
        "follows_chords": bool(bundle.encoding.reads_song) if bundle else False,
        "metric": bool(bundle.config.is_metric) if bundle else False,
        "blend_styles": list(bundle.config.style_names) if bundle else [],
        "style_mix": dict(metadata.style_mix) if metadata else {},
        "time_signature": metadata.time_signature if metadata else None,
        "default_controls": dict(metadata.default_controls) if metadata else {},
        "parts": [{"name": track.name, "program": track.program, "is_drum": track.is_drum}
                  for track in metadata.played_tracks] if metadata else [],
        "types": [{"name": entry.get("name", f"program {entry['program']}"),
                   "program": entry["program"], "track": entry.get("track")}
                  for entry in style_types(bundle)] if bundle else [],
        "metrics": dict(metadata.metrics) if metadata else {},
        "provenance": list(metadata.provenance) if metadata else [],
        "loads": bundle is not None,
        "error": style.error,
        "links": {"self": url_for("api.get_style", name=style.name),
                  "bundle": url_for("api.style_bundle", name=style.name)},
    }
    if card:
        body["card"] = metadata.card if metadata else ""
    return body


def _find_style(name: str):
    registry = get_services().registry
    style = next((style for style in registry.styles(load=False) if style.name == name),
                 None)
    if style is None:
        known = ", ".join(registry.names()) or "none"
        raise _Problem(f"there is no style {name!r}; the styles are: {known}", 404,
                          "not_found")
    return style


def _loaded(style):
    try:
        style.bundle = get_services().registry.get(style.name).bundle
    except PerfRNNError as error:
        style.error = str(error)
    return style


def _check_token() -> None:
    """Training and importing may need TRAINING_TOKEN (Bearer or X-Training-Token)."""
    if not current_app.config.get("TRAINING_TOKEN"):
        return
    given = request.headers.get("X-Training-Token", "")
    authorization = request.headers.get("Authorization", "")
    if not given and authorization[:7].lower() == "bearer ":
        given = authorization[7:].strip()
    if training_token_is_right(given):
        return
    if not given:
        raise _Problem("this server needs its training token: send it as "
                       "'Authorization: Bearer TOKEN' or 'X-Training-Token: TOKEN'",
                       401, "unauthorized")
    raise _Problem("the training token is wrong", 401, "unauthorized")


# ----- styles -------------------------------------------------------------------

@bp.get("/styles")
def list_styles():
    styles = get_services().registry.styles(load=True)
    return jsonify({"styles": [style_json(style) for style in styles]})


@bp.get("/styles/<name>")
def get_style(name: str):
    return jsonify(style_json(_loaded(_find_style(name)), card=True))


@bp.get("/styles/<name>/bundle")
def style_bundle(name: str):
    style = _find_style(name)
    return send_file(style.path, mimetype="application/octet-stream", as_attachment=True,
                     download_name=f"{style.name}.mag")


# ----- generations and jobs -------------------------------------------------------

@bp.post("/generations")
def create_generation():
    values, errors = _values(GENERATION.api_fields, files=GENERATION.api_uploads)
    if "primer" in values:
        errors["primer"] = "send the primer as a file (a multipart/form-data upload)"
    services = get_services()
    params = _checked(errors, lambda: generation_params(values, services.registry))
    job = submit_generation(services, get_queue(), params, owner_id(),
                            primer=request.files.get("primer"), **request_share())
    return _accepted(job)


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(job_json(_job_or_404(job_id)))


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str):
    job = _job_or_404(job_id)
    finished_before = job.finished
    if not finished_before:
        job = get_services().store.request_cancel(job.id) or job
    if finished_before or (job.finished and job.state != CANCELLED):
        return api_error(409, f"job {job.id} has already finished ({job.state}); there is "
                              "nothing to cancel", "conflict", job=job_json(job))
    response = jsonify(job_json(job))
    response.status_code = 202
    return response


@bp.get("/jobs/<job_id>/events")
def job_stream(job_id: str):
    job = _job_or_404(job_id)
    stream = job_events(get_services().store, job.id, describe=job_json,
                        max_seconds=float(current_app.config["SSE_MAX_SECONDS"]))
    give_back = current_app.extensions["perfrnn_streams"].take()
    response = Response(stream_with_context(stream), mimetype="text/event-stream")
    response.call_on_close(give_back)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _generation_or_404(job_id: str):
    """A generation of this client's that has not expired (404 otherwise)."""
    job = _job_or_404(job_id)
    if job.kind != "generation":
        raise _Problem(f"job {job.id} is a {job.kind}, not a generation", 404, "not_found")
    if job.state == EXPIRED:
        raise _Problem(f"the results of job {job.id} have expired and were deleted; "
                       "generate again (the same seed gives the same music)", 404, "expired")
    return job


@bp.get("/generations/<job_id>/<any(midi, notes, wav, mp3, pianoroll, stems):kind>")
def generation_file(job_id: str, kind: str):
    job = _generation_or_404(job_id)
    if job.state != DONE:
        raise _Problem(f"job {job.id} is {job.state}, not done; there is no file "
                          "to download", 409, "not_done")
    text = request.args.get("variation", "0").strip()
    if not (text.isascii() and text.isdigit()):
        raise _Problem(f"variation must be a whole number from 0, got {text[:40]!r}")
    variations = job.result.get("variations", [])
    index = int(text) if len(text) <= 6 else len(variations)
    if index >= len(variations):
        raise _Problem(f"job {job.id} has {len(variations)} variation(s), numbered from "
                          f"0; there is no variation {text[:40]}", 404, "not_found")
    entry = variations[index]
    name_field, mimetype, attachment = FILES[kind]
    services = get_services()
    try:
        if not isinstance(entry.get(kind), str):  # (a result made before had a note count)
            if kind not in MADE_ON_DOWNLOAD:
                raise _Problem(f"there is no {kind} file for this result (it was made before "
                               "the server kept one); generate again", 404, "not_found")
            made = made_file(services, job, index, kind)  # stored and recorded too
            return send_file(io.BytesIO(made.data), mimetype=mimetype, as_attachment=attachment,
                             download_name=made.filename)
        key = entry[kind]
        filename = (entry.get(name_field) if name_field else None) or Path(key).name
        url = services.storage.download_url(key, filename)
        if url:
            return redirect(url, 302)
        data = stored_bytes(services, job, entry, kind)
    except DownloadProblem as problem:
        raise _Problem(str(problem), problem.status, problem.code) from None
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=attachment,
                     download_name=filename)


@bp.post("/generations/<job_id>/edits")
def create_edit(job_id: str):
    """A new version of a finished generation: bars regenerated or added."""
    parent = _generation_or_404(job_id)
    if parent.state != DONE:
        raise _Problem(f"job {parent.id} is {parent.state}, not done; wait for it before "
                       "editing it", 409, "not_done")
    values, errors = _values(EDIT_FIELDS)
    services = get_services()
    try:
        bundle = services.registry.get(parent.params["style"]).bundle
    except PerfRNNError as error:
        raise _Problem(f"style {parent.params['style']!r} does not load: {error}", 409,
                       "style_unavailable") from None
    params = _checked(errors, lambda: edit_params(values, parent, bundle))
    job = submit_generation(services, get_queue(), params, owner_id(), **request_share())
    return _accepted(job)


@bp.get("/generations/<job_id>/versions")
def generation_versions(job_id: str):
    """The versions of a piece up to this one, the original (version 1) first."""
    job = _generation_or_404(job_id)
    chain = [job]
    store = get_services().store
    while chain[-1].params.get("source") and len(chain) < MAX_VERSIONS:
        parent = store.get(chain[-1].params["source"]["job"])
        if parent is None or not may_see(parent):
            break
        chain.append(parent)
    versions = []
    for version in reversed(chain):
        edit = version.params.get("edit") or {}
        versions.append({
            "id": version.id, "version": int(version.params.get("version", 1)),
            "kind": edit.get("kind", "generate"), "first_bar": edit.get("first_bar"),
            "last_bar": edit.get("last_bar"), "bars": edit.get("bars"),
            "parts": edit.get("parts", []), "seed": edit.get("seed", version.params.get("seed")),
            "state": version.state, "created_at": version.created_at,
            "links": {"self": url_for("api.get_job", job_id=version.id),
                      "page": url_for("pages.job", job_id=version.id)}})
    return jsonify({"versions": versions})


# ----- trainings and bundles ------------------------------------------------------

@bp.get("/trainings/presets")
def training_presets():
    return jsonify({"presets": [
        {"name": name, "description": preset.description,
         "layers": list(preset.layer_sizes), "steps": preset.steps}
        for name, preset in get_services().training_presets.items()]})


@bp.post("/trainings")
def create_training():
    _check_token()
    values, errors = _values(TRAINING.api_fields, files=TRAINING.api_uploads, form_only=True)
    services = get_services()
    params = _checked(errors, lambda: training_params(values, services.registry,
                                                             services.training_presets))
    uploads = request.files.getlist("files") + request.files.getlist("files[]")
    job = submit_training(services, get_queue(), params, uploads, owner_id(),
                              **request_share())
    return _accepted(job)


@bp.post("/bundles")
def create_bundle():
    _check_token()
    values, errors = _values(BUNDLE_IMPORT.api_fields, files=BUNDLE_IMPORT.api_uploads,
                             form_only=True)
    _checked(errors, lambda: None)
    services = get_services()
    name = import_bundle(services, request.files.get("bundle"),
                         (values.get("name") or "").strip() or None)
    style = _loaded(_find_style(name))
    response = jsonify({"style": style_json(style, card=True)})
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_style", name=name)
    return response


# ----- radio streams -------------------------------------------------------------

STREAM_ID = re.compile(r"[0-9a-f]{16}")
NO_AUDIO_RETRY_SECONDS = 3600  # audio is off or broken here: an operator must act


def _hub():
    return current_app.extensions["perfrnn_radio"]


def _stream_or_404(stream_id: str):
    stream = _hub().get(stream_id) if STREAM_ID.fullmatch(stream_id) else None
    if stream is None:
        raise _Problem(f"there is no stream {stream_id!r} (a stream nobody listens to stops "
                       "after a few seconds)", 404, "not_found")
    return stream


def stream_json(stream) -> dict:
    return {**stream.to_dict(),
            "audio_url": url_for("api.stream_audio", stream_id=stream.id),
            "midi_url": url_for("api.stream_midi", stream_id=stream.id)}


@bp.post("/streams")
def create_stream():
    from perfrnn.audio import AudioUnavailable
    from perfrnn.options import GenerationOptions, pitch_histogram_for_key
    from perfrnn.radio import Radio
    from webapp.web.schema import STREAM
    from webapp.web.validation import stream_params

    values, unknown = _values(STREAM.api_fields)
    registry = get_services().registry
    params = _checked(unknown, lambda: stream_params(values, registry))
    hub = _hub()
    if not current_app.config["RENDER_AUDIO"]:
        return _retry_later("this server renders no audio (RENDER_AUDIO is off), so it plays "
                            "no radio", NO_AUDIO_RETRY_SECONDS)
    hub.reserve()  # StreamsFull: 503
    try:
        options = GenerationOptions(
            seed=params["seed"], temperature=float(params["temperature"]),
            bpm=float(params["bpm"]), notes_per_second=params.get("density"),
            pitch_histogram=pitch_histogram_for_key(params["key"]) if params.get("key")
            else None)
        radio = Radio(registry.sampler(params["style"]), options,
                      program=params.get("program"), track=params.get("part"))
    except BaseException as error:  # the slot kept for it goes back
        hub.release()
        if isinstance(error, AudioUnavailable):
            return _retry_later(f"audio is unavailable on this server: {error}",
                                NO_AUDIO_RETRY_SECONDS)
        if isinstance(error, PerfRNNError):
            raise _Problem(str(error), 422, "invalid") from None
        raise
    stream = hub.open(radio, params["style"], params)
    response = jsonify(stream_json(stream))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_stream", stream_id=stream.id)
    return response


@bp.get("/streams/<stream_id>")
def get_stream(stream_id: str):
    return jsonify(stream_json(_stream_or_404(stream_id)))


@bp.patch("/streams/<stream_id>")
def change_stream(stream_id: str):
    from perfrnn.options import pitch_histogram_for_key
    from webapp.web.schema import STREAM_CHANGE
    from webapp.web.validation import stream_change

    stream = _stream_or_404(stream_id)
    values, unknown = _values(STREAM_CHANGE.api_fields)
    params = _checked(unknown, lambda: stream_change(values, stream.conditioned))
    try:
        stream.change(bpm=params.get("bpm"), temperature=params.get("temperature"),
                      notes_per_second=params.get("density"), key=params.get("key"),
                      pitch_histogram=pitch_histogram_for_key(params["key"])
                      if params.get("key") else None)
    except PerfRNNError as error:
        raise _Problem(str(error), 409, "conflict") from None
    return jsonify(stream_json(stream))


@bp.delete("/streams/<stream_id>")
def delete_stream(stream_id: str):
    _stream_or_404(stream_id)
    _hub().close(stream_id)
    return Response(status=204)


@bp.get("/streams/<stream_id>/audio")
def stream_audio(stream_id: str):
    stream = _stream_or_404(stream_id)
    if request.method == "HEAD":  # the headers alone: no listener's slot taken
        response = Response(mimetype="audio/mpeg")
        response.headers["Cache-Control"] = "no-cache, no-store"
        return response
    chunks = stream.listen()  # StreamsFull: 503; werkzeug closes it when the client goes
    response = Response(chunks, mimetype="audio/mpeg")
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/streams/<stream_id>/midi")
def stream_midi(stream_id: str):
    stream = _stream_or_404(stream_id)
    minutes = request.args.get("minutes")
    try:
        span = None if minutes in (None, "") else float(minutes)
        if span is not None and not 0 < span <= 30:
            raise ValueError
    except ValueError:
        raise _Problem("minutes must be a number of minutes from 0 to 30", 422,
                       "invalid") from None
    try:
        data = stream.midi(span)
    except PerfRNNError as error:
        raise _Problem(str(error), 409, "conflict") from None
    return send_file(io.BytesIO(data), mimetype="audio/midi", as_attachment=True,
                     download_name=f"{stream.style}-radio-seed{stream.radio.seed}.mid")


# ----- the description ------------------------------------------------------------

@bp.get("/openapi.json")
def openapi_document():
    from webapp.web.openapi import build_spec

    return jsonify(build_spec(request.host_url.rstrip("/")))


@bp.get("/docs")
def docs():
    from webapp.web.openapi import build_spec, operations, rich

    spec = build_spec(request.host_url.rstrip("/"))
    return render_template("api_docs.html", spec=spec, operations=operations(spec),
                           introduction=rich(spec["info"]["description"]))
