"""The JSON API under /api/v1, through Flask's test client and real workers.

Generations are 5 s of the small test styles (see conftest.py); one tiny
real training runs (4 steps of a 1x16 LSTM on three generated MIDI files).
"""

from __future__ import annotations

import io
import json
import random
import re
import time
import wave
from pathlib import Path

import mido
import pytest

from tests.conftest import GENEROUS_LIMITS, magenta_bundle_path, poll_until, wait_for_job

API = "/api/v1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----- helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_app(tmp_path_factory, web_bundles_dir):
    """One app shared by the tests that need no special settings (its styles
    compile once)."""
    from webapp import create_app

    app = create_app({"TESTING": True,
                      "INSTANCE_PATH": str(tmp_path_factory.mktemp("api") / "instance"),
                      "BUNDLES_DIR": str(web_bundles_dir), "PRELOAD_STYLES": False,
                      **GENEROUS_LIMITS})
    yield app
    from webapp.services import shutdown

    shutdown(app)


@pytest.fixture
def client(api_app):
    return api_app.test_client()


def midi_bytes(seed: int = 0, notes: int = 40) -> bytes:
    """A small one-track piano piece made with mido."""
    rng = random.Random(seed)
    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.Message("program_change", program=0, time=0))
    for index in range(notes):
        pitch = rng.randrange(48, 84)
        track.append(mido.Message("note_on", note=pitch, velocity=rng.randrange(40, 110),
                                  time=0 if index == 0 else 60))
        track.append(mido.Message("note_off", note=pitch, velocity=0,
                                  time=rng.choice([120, 240])))
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body.get("message"), str) and body["message"]
    assert isinstance(body.get("error"), str)
    if code:
        assert body["error"] == code
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "<html" not in text.lower()
    return body


def assert_invalid(response, field: str) -> dict:
    body = assert_error(response, 422, "invalid")
    assert field in body["fields"], body
    assert body["fields"][field]
    return body


def submit(client, **fields) -> dict:
    response = client.post(f"{API}/generations", json=fields)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["job"]


def generate(app, client, **fields) -> dict:
    """Runs a generation to its end; returns the job as GET /jobs/<id> shows it."""
    job = submit(client, **fields)
    finished = wait_for_job(app, job["id"], 60)
    assert finished.state == "done", finished.error
    return client.get(f"{API}/jobs/{job['id']}").get_json()


def read_events(response) -> list[tuple[str | None, str]]:
    """The (event, data) pairs and comments of an SSE stream, read to its end."""
    text = "".join(chunk.decode() for chunk in response.response)
    response.close()
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                events.append(("comment", line[1:].strip()))
            elif line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        if data:
            events.append((name, "\n".join(data)))
    return events


def job_events(events) -> list[dict]:
    return [json.loads(data) for name, data in events if name == "job"]


def wait_for_state(app, job_id: str, state: str, timeout: float = 30.0):
    store = app.extensions["perfrnn"].store
    return poll_until(lambda: (job := store.get(job_id)).state == state and job, timeout,
                      f"job {job_id} to become {state}", interval=0.05)


# ----- styles ------------------------------------------------------------------------

def test_list_styles(client):
    response = client.get(f"{API}/styles")
    assert response.status_code == 200
    styles = {style["name"]: style for style in response.get_json()["styles"]}
    assert {"piano", "rock"} <= set(styles)
    piano, rock = styles["piano"], styles["rock"]
    keys = {"name", "origin", "description", "size_bytes", "default_bpm", "conditioned",
            "follows_chords", "default_controls", "parts", "types", "metrics", "provenance",
            "loads", "error"}
    assert keys <= set(piano) and keys <= set(rock)
    assert piano["conditioned"] is True and rock["conditioned"] is False
    assert piano["follows_chords"] is True and rock["follows_chords"] is False
    assert piano["origin"] == rock["origin"] == "shipped"
    assert rock["loads"] is True and rock["error"] is None
    assert rock["default_bpm"] == 120.0 and rock["size_bytes"] > 0
    assert rock["types"] == [
        {"name": "Overdriven Guitar", "program": 29, "track": "harmony"},
        {"name": "Distortion Guitar", "program": 30, "track": "harmony"}]
    assert [part["name"] for part in rock["parts"]] == ["drums", "bass", "harmony", "lead"]
    assert rock["parts"][0]["is_drum"] is True and rock["parts"][1]["program"] == 33
    assert rock["provenance"] == [{"source": "random weights", "licence": "CC0"}]
    assert "card" not in rock


def test_get_style_with_card_and_unknown(client):
    response = client.get(f"{API}/styles/rock")
    assert response.status_code == 200
    rock = response.get_json()
    assert rock["name"] == "rock" and rock["card"].startswith("# rock (test)")
    assert rock["description"] == "a small test band"
    body = assert_error(client.get(f"{API}/styles/nosuch"), 404, "not_found")
    assert "nosuch" in body["message"]


def test_download_style_bundle(client, web_bundles_dir):
    response = client.get(f"{API}/styles/rock/bundle")
    assert response.status_code == 200
    assert response.data == (web_bundles_dir / "rock.mag").read_bytes()
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "rock.mag" in disposition
    assert_error(client.get(f"{API}/styles/nosuch/bundle"), 404, "not_found")


# ----- generations: checking the request ------------------------------------------------

INVALID_GENERATIONS = [
    ({"style": "nosuch", "seconds": 5}, "style"),
    ({"seconds": 5}, "style"),
    ({"style": "rock", "length": 4, "unit": "seconds"}, "length"),
    ({"style": "rock", "length": 11, "unit": "minutes"}, "length"),
    ({"style": "rock", "length": 5, "unit": "hours"}, "unit"),
    ({"style": "rock", "length": "long", "unit": "seconds"}, "length"),
    ({"style": "rock", "seconds": 4}, "seconds"),
    ({"style": "rock", "seconds": 601}, "seconds"),
    ({"style": "rock", "seconds": 5, "temperature": 0}, "temperature"),
    ({"style": "rock", "seconds": 5, "temperature": 2.5}, "temperature"),
    ({"style": "rock", "seconds": 5, "variations": 5}, "variations"),
    ({"style": "rock", "seconds": 5, "variations": 0}, "variations"),
    ({"style": "rock", "seconds": 5, "seed": -1}, "seed"),
    ({"style": "rock", "seconds": 5, "seed": "abc"}, "seed"),
    ({"style": "rock", "seconds": 5, "seed": 1.5}, "seed"),
    ({"style": "rock", "seconds": 5, "bpm": 5}, "bpm"),
    ({"style": "rock", "seconds": 5, "bpm": True}, "bpm"),
    ({"style": "rock", "seconds": 5, "key": "C"}, "key"),
    ({"style": "piano", "seconds": 5, "key": "H#"}, "key"),
    ({"style": "rock", "seconds": 5, "density": 5}, "density"),
    ({"style": "piano", "seconds": 5, "density": 100}, "density"),
    ({"style": "rock", "seconds": 5, "type": "Banjo"}, "type"),
    ({"style": "rock", "seconds": 5, "type": 40}, "type"),
    ({"style": "rock", "seconds": 5, "type": 200}, "type"),
    ({"style": "rock", "seconds": 5, "lenght": 30}, "lenght"),
    ({"style": "rock", "seconds": 5, "primer": "C D E"}, "primer"),
    ({"style": "rock", "bars": 0}, "bars"),
    ({"style": "rock", "bars": 2.5}, "bars"),
    ({"style": "rock", "bars": 256, "bpm": 40}, "length"),
    ({"style": "rock", "seconds": 5, "loop": True}, "loop"),
    ({"style": "rock", "bars": 4, "feel": "lazy"}, "feel"),
    ({"style": "rock", "bars": 4, "seconds": 10}, "bars"),
    ({"style": "rock", "seconds": 600, "bpm": 300}, "length"),
    ({"style": "piano", "seconds": 5, "chords": "C Hm7 F"}, "chords"),
    ({"style": "piano", "seconds": 5, "chords": " ".join(["C", "G"] * 33)}, "chords"),
    ({"style": "piano", "seconds": 5, "chords": "C " * 201}, "chords"),
    ({"style": "piano", "seconds": 5, "chords": "C G | Am"}, "chords"),
    ({"style": "piano", "seconds": 5, "chords": ["C", "G"]}, "chords"),
    ({"style": "rock", "seconds": 5, "chords": "C G Am F"}, "chords"),
    ({"style": "rock", "seconds": 5, "form": "endless"}, "form"),
    ({"style": "rock", "seconds": 5, "form": "xyz"}, "form"),
    ({"style": "rock", "seconds": 5, "form": 3}, "form"),
]


@pytest.mark.parametrize("fields, field", INVALID_GENERATIONS,
                         ids=[f"{field}-{i}" for i, (_, field) in
                              enumerate(INVALID_GENERATIONS)])
def test_invalid_generation(api_app, client, fields, field):
    store = api_app.extensions["perfrnn"].store
    before = store.count(("queued", "running", "done", "failed", "cancelled"))
    body = assert_invalid(client.post(f"{API}/generations", json=fields), field)
    assert field in body["message"]
    assert store.count(("queued", "running", "done", "failed", "cancelled")) == before


@pytest.mark.parametrize("fields, words", [
    ({"chords": "C Hm7 F"}, ["'Hm7'", "maj7", "m7b5", "sus4", "(major)"]),
    ({"chords": " ".join(["C", "G"] * 33)}, ["at most 64 bars"]),
    ({"chords": "C " * 201}, ["402 characters", "at most 400"]),
    ({"form": "endless"}, ["radio", "song or loop"]),
    ({"form": "xyz"}, ["'xyz'", "song or loop"]),
])
def test_chords_and_form_mistakes_say_what_to_change(client, fields, words):
    body = assert_invalid(client.post(f"{API}/generations",
                                      json={"style": "piano", "bars": 4, **fields}),
                          next(iter(fields)))
    message = body["fields"][next(iter(fields))]
    for word in words:
        assert word in message and word in body["message"], (word, message)


def test_invalid_generation_reports_every_field(client):
    body = assert_invalid(client.post(f"{API}/generations", json={
        "style": "rock", "seconds": 1, "temperature": 0, "bogus": 1}), "seconds")
    assert {"seconds", "temperature", "bogus"} <= set(body["fields"])


def test_invalid_generation_as_form(client):
    response = client.post(f"{API}/generations", data={"style": "rock", "seconds": "3"},
                           content_type="multipart/form-data")
    assert_invalid(response, "seconds")
    response = client.post(f"{API}/generations", data={"style": "rock", "variations": "9"})
    assert_invalid(response, "variations")  # application/x-www-form-urlencoded


@pytest.mark.parametrize("data, content_type", [
    ('{"style": "rock", ', "application/json"),
    ("[1, 2]", "application/json"),
    ('"rock"', "application/json"),
    ("style=rock", "text/plain"),
    ("<generation/>", "application/xml"),
    ("", None),
])
def test_generation_body_not_json_or_form(client, data, content_type):
    response = client.post(f"{API}/generations", data=data, content_type=content_type)
    assert_error(response, 400, "bad_request")


# ----- generations: the whole flow ------------------------------------------------------

def test_generation_flow_and_downloads(api_app, client):
    response = client.post(f"{API}/generations", json={
        "style": "rock", "seconds": 5, "seed": 123, "type": "Distortion Guitar"})
    assert response.status_code == 202
    body = response.get_json()
    job_id = body["job"]["id"]
    assert re.fullmatch(r"[0-9a-f]+", job_id)
    assert body["job"]["state"] in ("queued", "running")
    assert body["job"]["params"]["program"] == 30 and body["job"]["params"]["seed"] == 123
    assert body["links"] == {"self": f"{API}/jobs/{job_id}",
                             "events": f"{API}/jobs/{job_id}/events",
                             "edits": f"{API}/generations/{job_id}/edits",
                             "versions": f"{API}/generations/{job_id}/versions"}
    assert body["job"]["version"] == 1 and body["job"]["edit"] is None
    assert response.headers["Location"].endswith(f"{API}/jobs/{job_id}")

    assert wait_for_job(api_app, job_id, 60).state == "done"
    job = client.get(f"{API}/jobs/{job_id}").get_json()
    assert job["state"] == "done" and job["progress"] == 1.0
    assert job["result"]["seed"] == 123 and job["result"]["audio"] is True
    assert job["downloads"] == [{"index": 0, **{
        kind: f"{API}/generations/{job_id}/{kind}?variation=0"
        for kind in ("midi", "notes", "wav", "mp3", "pianoroll", "stems")}}]

    midi = client.get(job["downloads"][0]["midi"])
    assert midi.status_code == 200 and midi.mimetype == "audio/midi"
    disposition = midi.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert re.search(r"filename=\"?rock-5s-seed123\.mid", disposition)
    song = mido.MidiFile(file=io.BytesIO(midi.data))
    assert 4.0 <= song.length <= 6.0
    programs = {track.name: [message.program for message in track
                             if message.type == "program_change"] for track in song.tracks}
    assert programs["harmony"] == [30]  # the type replaces the part's usual 29
    assert 29 not in sum(programs.values(), [])
    assert sum(message.type == "note_on" for message in song) > 0

    default_variation = client.get(f"{API}/generations/{job_id}/midi")
    assert default_variation.data == midi.data

    audio = client.get(job["downloads"][0]["wav"])
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert "rock-5s-seed123.wav" in audio.headers["Content-Disposition"]
    with wave.open(io.BytesIO(audio.data)) as sound:
        assert 4.0 <= sound.getnframes() / sound.getframerate() <= 8.0

    picture = client.get(job["downloads"][0]["pianoroll"])
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert picture.data.startswith(PNG_MAGIC)
    assert not picture.headers.get("Content-Disposition", "").startswith("attachment")

    # The same seed and settings give the same file; another seed does not.
    again = generate(api_app, client, style="rock", seconds=5, seed=123,
                     type="Distortion Guitar")
    assert client.get(again["downloads"][0]["midi"]).data == midi.data
    other = generate(api_app, client, style="rock", seconds=5, seed=124,
                     type="Distortion Guitar")
    assert client.get(other["downloads"][0]["midi"]).data != midi.data

    # Variations that do not exist, and a variation that is not a number.
    assert_error(client.get(f"{API}/generations/{job_id}/midi?variation=1"), 404, "not_found")
    assert_error(client.get(f"{API}/generations/{job_id}/png"), 404)
    for bad in ("abc", "-1", "1.5"):
        assert_error(client.get(f"{API}/generations/{job_id}/wav?variation={bad}"), 400)

    # A finished job cannot be cancelled.
    body = assert_error(client.delete(f"{API}/jobs/{job_id}"), 409, "conflict")
    assert body["job"]["state"] == "done"

    # Once results expire, the job says so and the files are gone.
    from webapp.jobs.expiry import remove_expired

    assert remove_expired(api_app.extensions["perfrnn"], -1) >= 1
    expired = client.get(f"{API}/jobs/{job_id}").get_json()
    assert expired["state"] == "expired" and "downloads" not in expired
    for kind in ("midi", "notes", "wav", "mp3", "pianoroll", "stems"):
        body = assert_error(client.get(f"{API}/generations/{job_id}/{kind}"), 404, "expired")
        assert "expired" in body["message"]


def test_a_loop_in_bars_with_swing_ends_on_its_bar_line(api_app, client):
    job = generate(api_app, client, style="rock", bars=4, bpm=90, seed=8, loop=True,
                   feel="swing")
    assert job["params"]["bars"] == 4 and job["params"]["loop"] is True
    assert job["params"]["feel"] == "swing"
    midi = client.get(job["downloads"][0]["midi"])
    assert re.search(r"rock-4bars-loop-seed8\.mid", midi.headers["Content-Disposition"])
    song = mido.MidiFile(file=io.BytesIO(midi.data))
    assert {sum(message.time for message in track) for track in song.tracks} == {4 * 4 * 480}
    assert song.length == pytest.approx(4 * 4 * 60 / 90, abs=1e-3)
    assert job["result"]["variations"][0]["seconds"] == pytest.approx(4 * 4 * 60 / 90, abs=1e-3)


def song_marks(midi_data: bytes) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(bar, marker) and (bar, chord symbol) of a 4/4 file's song plan (its
    conductor track's markers and text events)."""
    song = mido.MidiFile(file=io.BytesIO(midi_data))
    marks, tick = [], 0
    for message in song.tracks[0]:
        tick += message.time
        if message.type in ("marker", "text"):
            marks.append((tick // (4 * song.ticks_per_beat), message.type, message.text))
    return ([(bar, text) for bar, kind, text in marks if kind == "marker"],
            [(bar, text) for bar, kind, text in marks if kind == "text"])


def test_chords_and_form_reach_the_worker(api_app, client):
    """The chords and form of a request are kept with the job and played: the
    file's conductor track carries the plan the model followed."""
    job = generate(api_app, client, style="piano", bars=8, seed=5, chords="Am | F | C | G",
                   form="loop", quality="fast")
    assert job["params"]["chords"] == ["Am", "F", "C", "G"]
    assert job["params"]["form"] == "loop"
    markers, chords = song_marks(client.get(job["downloads"][0]["midi"]).data)
    assert chords == list(enumerate(["Am", "F", "C", "G"] * 2))
    assert markers == [(0, "A")]  # the main section only: no ending

    song = generate(api_app, client, style="piano", bars=8, seed=5, chords="Am | F | C | G",
                    quality="fast")
    assert "form" not in song["params"]
    assert song_marks(client.get(song["downloads"][0]["midi"]).data)[0] == [(0, "A"),
                                                                            (7, "Ending")]


def test_key_of_a_style_that_follows_chords_reaches_the_worker(make_app, tmp_path):
    """A band that follows chords, without a key control, plays its own
    progression (C F G C) in the key asked for."""
    from perfrnn.bundle import BundleMetadata, write_bundle
    from perfrnn.configs import BAND_TRACKS
    from tests.conftest import small_band_bundle

    folder = tmp_path / "bundles"
    folder.mkdir()
    write_bundle(small_band_bundle(config_id="metric_band_song", metadata=BundleMetadata(
        style="songband", tracks=BAND_TRACKS, default_bpm=120.0,
        progressions=[["C", "F", "G", "C"]])), folder / "songband.mag")
    app = make_app(BUNDLES_DIR=str(folder), RENDER_AUDIO=False)
    client = app.test_client()
    band = client.get(f"{API}/styles/songband").get_json()
    assert band["follows_chords"] is True and band["conditioned"] is False
    assert_invalid(client.post(f"{API}/generations", json={
        "style": "songband", "bars": 4, "key": "H"}), "key")
    job = generate(app, client, style="songband", bars=4, seed=2, key="G", quality="fast")
    assert job["params"]["song_key"] == "G" and "key" not in job["params"]
    markers, chords = song_marks(client.get(job["downloads"][0]["midi"]).data)
    assert chords == [(0, "G"), (1, "C"), (2, "D"), (3, "G")]


def test_unknown_jobs(client):
    for job_id in ("0123456789abcdef", "NOT-HEX", "abc", "0123456789abcdef0123456789abcdef00"):
        assert_error(client.get(f"{API}/jobs/{job_id}"), 404, "not_found")
        assert_error(client.delete(f"{API}/jobs/{job_id}"), 404, "not_found")
        assert_error(client.get(f"{API}/jobs/{job_id}/events"), 404, "not_found")
        assert_error(client.get(f"{API}/generations/{job_id}/midi"), 404, "not_found")


def test_primers_and_unrendered_audio(make_app):
    app = make_app(RENDER_AUDIO=False)
    client = app.test_client()

    def post(filename: str, data: bytes, **fields):
        fields = {"style": "piano", "seconds": "5", "seed": "7", **fields}
        return client.post(f"{API}/generations", content_type="multipart/form-data",
                           data={**fields, "primer": (io.BytesIO(data), filename)})

    body = assert_invalid(post("x.mid", b"this is not music at all" * 20), "primer")
    assert "x.mid" in body["fields"]["primer"]
    assert_invalid(post("x.txt", midi_bytes()), "primer")
    assert_invalid(post("empty.mid", midi_bytes(notes=0)), "primer")
    assert_invalid(post("x.mid", midi_bytes(), key="H#"), "key")
    assert not list((Path(app.instance_path) / "storage").rglob("*.mid"))

    response = post("melody.mid", midi_bytes(), key="C major", density="4",
                    length="0.1", unit="minutes", seconds="")
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert job["params"]["primer"].endswith("melody.mid")
    assert job["params"]["seconds"] == 6 and job["params"]["key"] == "C major"
    finished = wait_for_job(app, job["id"], 60)
    assert finished.state == "done", finished.error
    shown = client.get(f"{API}/jobs/{job['id']}").get_json()
    assert shown["downloads"][0]["wav"] is None and shown["downloads"][0]["mp3"] is None
    midi = client.get(shown["downloads"][0]["midi"])
    assert mido.MidiFile(file=io.BytesIO(midi.data)).length > 4.0
    body = assert_error(client.get(f"{API}/generations/{job['id']}/wav"), 404, "no_audio")
    assert "RENDER_AUDIO" in body["message"]


# ----- following a job: Server-Sent Events ---------------------------------------------

def test_each_variation_is_scored_and_listed_best_first(api_app, client):
    job = generate(api_app, client, style="rock", seconds=6, seed=5, variations=3,
                   quality="best")
    assert job["params"]["quality"] == "best"
    variations = job["result"]["variations"]
    overall = [variation["score"]["overall"] for variation in variations]
    assert overall == sorted(overall, reverse=True)
    spec = client.get(f"{API}/openapi.json").get_json()["components"]["schemas"]
    documented = spec["Score"]["properties"]
    for variation in variations:
        score = variation["score"]
        assert set(score) == set(documented)
        assert 0 <= score["style"] <= 1 and 0 <= score["overall"] <= score["style"]
        assert 0 <= score["on_beat"] <= 1 and 0 <= score["in_key"] <= 1
        assert score["longest_silence"] <= score["silence_limit"] + 1e-3  # the silence cap
    assert spec["Job"]["properties"]["result"]["properties"]["variations"]["items"] == {
        "$ref": "#/components/schemas/Variation"}
    # the quality is one of the documented names
    assert spec["GenerationRequest"]["properties"]["quality"]["enum"] == ["fast", "better",
                                                                          "best"]
    assert_invalid(client.post(f"{API}/generations", json={"style": "rock", "quality": "superb"}),
                   "quality")


def test_events_stream_follows_a_generation(client):
    job = submit(client, style="rock", seconds=5, seed=5)
    started = time.monotonic()
    response = client.get(f"{API}/jobs/{job['id']}/events", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    updates = job_events(read_events(response))  # ends by itself when the job is done
    assert time.monotonic() - started < 60
    assert len(updates) >= 2
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert updates[-1]["state"] == "done"
    assert all(update["state"] != "done" for update in updates[:-1])
    assert updates[-1]["downloads"][0]["midi"].endswith("variation=0")
    assert len({json.dumps(update, sort_keys=True) for update in updates}) == len(updates)


def test_events_stream_of_a_finished_job_is_one_event(api_app, client):
    store = api_app.extensions["perfrnn"].store
    job = store.create("generation", {"style": "rock"})
    store.request_cancel(job.id)
    events = read_events(client.get(f"{API}/jobs/{job.id}/events", buffered=False))
    updates = job_events(events)
    assert [update["state"] for update in updates] == ["cancelled"]


def test_events_stream_stops_after_sse_max_seconds(api_app, client, monkeypatch):
    monkeypatch.setitem(api_app.config, "SSE_MAX_SECONDS", 0.6)
    store = api_app.extensions["perfrnn"].store
    job = store.create("generation", {"style": "rock"})  # never queued: stays queued
    started = time.monotonic()
    events = read_events(client.get(f"{API}/jobs/{job.id}/events", buffered=False))
    assert 0.5 <= time.monotonic() - started < 10
    assert [update["state"] for update in job_events(events)] == ["queued"]
    assert events[-1][0] == "comment" and "limit" in events[-1][1]
    assert client.delete(f"{API}/jobs/{job.id}").get_json()["state"] == "cancelled"


def test_event_generator_sends_changes_keepalives_and_ends(tmp_path):
    from webapp.jobs.store import JobStore
    from webapp.web.events import job_events as events_of

    store = JobStore(tmp_path / "jobs.sqlite3")
    job = store.create("generation", {"style": "rock"})
    stream = events_of(store, job.id, poll_seconds=0.01, keepalive_seconds=0.05,
                       max_seconds=0.3)
    text = "".join(stream)
    assert text.count("event: job") == 1 and ": keepalive" in text
    assert "time limit" in text

    stream = events_of(store, job.id, poll_seconds=0.01, max_seconds=10)
    assert next(stream).startswith("retry: ")

    def data(chunk: str) -> dict:
        assert chunk.startswith("event: job\ndata: ") and chunk.endswith("\n\n")
        return json.loads(chunk.split("data: ", 1)[1])

    assert data(next(stream))["state"] == "queued"
    store.start(job.id)
    assert data(next(stream))["state"] == "running"
    store.progress(job.id, 0.5, "generating", {"step": 3})
    update = data(next(stream))
    assert (update["progress"], update["stage"], update["detail"]) == (0.5, "generating",
                                                                       {"step": 3})
    store.finish(job.id, {"variations": []})
    assert data(next(stream))["state"] == "done"
    assert next(stream, None) is None

    other = store.create("generation", {})
    stream = events_of(store, other.id, poll_seconds=0.01, max_seconds=10)
    next(stream), next(stream)
    store.delete(other.id)
    assert next(stream).startswith("event: gone")
    assert next(stream, None) is None


# ----- cancelling and a full queue ------------------------------------------------------

def test_cancel_queued_and_running_jobs_and_full_queue(make_app):
    app = make_app(GENERATION_WORKERS=1, QUEUE_LIMIT=1)
    client = app.test_client()
    store = app.extensions["perfrnn"].store
    long_job = submit(client, style="rock", seconds=600, variations=4, seed=1)
    wait_for_state(app, long_job["id"], "running")
    waiting = submit(client, style="rock", seconds=5, seed=2)
    assert store.get(waiting["id"]).state == "queued"

    before = store.count(("queued", "running", "done", "failed", "cancelled"))
    busy = client.post(f"{API}/generations", json={"style": "rock", "seconds": 5})
    body = assert_error(busy, 503, "busy")
    assert int(busy.headers["Retry-After"]) > 0 and body["retry_after"] > 0
    assert store.count(("queued", "running", "done", "failed", "cancelled")) == before

    response = client.delete(f"{API}/jobs/{waiting['id']}")
    assert response.status_code == 202
    assert response.get_json()["state"] == "cancelled"
    assert store.get(waiting["id"]).state == "cancelled"
    assert_error(client.get(f"{API}/generations/{waiting['id']}/midi"), 409, "not_done")

    response = client.delete(f"{API}/jobs/{long_job['id']}")
    assert response.status_code == 202
    shown = response.get_json()
    assert shown["state"] in ("running", "cancelled") and shown["cancel_requested"] is True
    finished = wait_for_job(app, long_job["id"], 30)
    assert finished.state == "cancelled" and finished.result is None
    assert_error(client.delete(f"{API}/jobs/{long_job['id']}"), 409, "conflict")
    assert_error(client.delete(f"{API}/jobs/{waiting['id']}"), 409, "conflict")
    assert_error(client.get(f"{API}/generations/{long_job['id']}/pianoroll"), 409)


# ----- training ------------------------------------------------------------------------

def test_training_presets_default(client):
    response = client.get(f"{API}/trainings/presets")
    assert response.status_code == 200
    presets = {preset["name"]: preset for preset in response.get_json()["presets"]}
    assert {"quick", "standard", "large"} <= set(presets)
    assert presets["quick"]["layers"] == [128, 128] and presets["quick"]["steps"] == 300
    assert presets["quick"]["description"]


def test_training_needs_its_token_and_trains_a_style(make_app):
    from training.pipeline import Preset

    app = make_app(TRAINING_TOKEN="s3cret", TRAINING_PRESETS={
        "quick": Preset("quick", "tiny", (16,), 4, 2, 32, 2, 1)})
    client = app.test_client()
    presets = client.get(f"{API}/trainings/presets").get_json()["presets"]
    assert presets == [{"name": "quick", "description": "tiny", "layers": [16], "steps": 4}]

    def post(headers=None, files=None, **fields):
        files = files if files is not None else [
            (io.BytesIO(midi_bytes(seed)), f"song{seed}.mid") for seed in range(3)]
        data = {"name": "mine", "preset": "quick", **fields}
        if files:
            data["files"] = files
        return client.post(f"{API}/trainings", data=data, headers=headers or {},
                           content_type="multipart/form-data")

    good = {"Authorization": "Bearer s3cret"}
    response = post()
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(post({"Authorization": "Bearer wrong"}), 401)
    assert_error(post({"X-Training-Token": "s3cre"}), 401)
    assert_error(post({"Authorization": "Basic s3cret"}), 401)
    assert_error(client.post(f"{API}/trainings", json={"name": "mine"}, headers=good), 400)

    assert_invalid(post(good, files=[(io.BytesIO(b"text"), "notes.txt")]), "files")
    assert_invalid(post(good, files=[]), "files")
    assert_invalid(post(good, files=[(io.BytesIO(b""), "empty.mid")]), "files")
    assert_invalid(post(good, name="rock"), "name")
    assert_invalid(post(good, name="Not A Name!"), "name")
    assert_invalid(post(good, preset="huge"), "preset")
    assert_invalid(post(good, kind="orchestra"), "kind")
    assert_invalid(post(good, start="middle"), "start")
    assert_invalid(post(good, colour="blue"), "colour")
    assert app.extensions["perfrnn"].store.count(("queued", "running")) == 0

    response = post(good)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert job["kind"] == "training" and job["params"]["name"] == "mine"
    assert response.headers["Location"].endswith(f"{API}/jobs/{job['id']}")

    # A second one, with the other header, waits behind it and is cancelled.
    second = post({"X-Training-Token": "s3cret"}, name="other")
    assert second.status_code == 202
    second_id = second.get_json()["job"]["id"]
    assert client.delete(f"{API}/jobs/{second_id}").status_code == 202
    assert wait_for_job(app, second_id, 60).state == "cancelled"

    finished = wait_for_job(app, job["id"], 90)
    assert finished.state == "done", finished.error
    shown = client.get(f"{API}/jobs/{job['id']}").get_json()
    assert shown["result"]["style"] == "mine" and shown["result"]["steps"] == 4
    assert shown["result"]["parent"] == "piano"  # fine-tuned from the shipped piano
    assert shown["links"]["style"] == f"{API}/styles/mine"
    assert "loss_points" in shown["detail"]
    assert_error(client.get(f"{API}/generations/{job['id']}/midi"), 404, "not_found")

    styles = {style["name"]: style for style in client.get(f"{API}/styles").get_json()["styles"]}
    assert styles["mine"]["origin"] == "user" and styles["mine"]["loads"] is True
    generated = generate(app, client, style="mine", seconds=5, seed=3)
    assert client.get(generated["downloads"][0]["midi"]).data.startswith(b"MThd")
    assert_invalid(post(good), "name")  # "mine" is taken now
    registry = app.extensions["perfrnn"].registry
    tuned = registry.get("mine").bundle
    assert tuned.metadata.training["parent"].endswith("piano.mag")
    assert tuned.config.rnn_layer_sizes == registry.get("piano").bundle.config.rnn_layer_sizes

    fresh = post(good, name="fresh", start="scratch")
    assert fresh.status_code == 202
    finished = wait_for_job(app, fresh.get_json()["job"]["id"], 90)
    assert finished.state == "done", finished.error
    assert finished.result["parent"] is None
    assert registry.get("fresh").bundle.config.rnn_layer_sizes == (16,)


# ----- importing bundles ----------------------------------------------------------------

def test_import_bundles(make_app, web_bundles_dir):
    app = make_app(TRAINING_TOKEN="s3cret")
    client = app.test_client()
    styles_dir = app.extensions["perfrnn"].styles_dir
    magenta = magenta_bundle_path("performance_with_dynamics")
    token = {"X-Training-Token": "s3cret"}

    def post(data: bytes, filename: str, headers=token, **fields):
        return client.post(f"{API}/bundles", headers=headers, content_type="multipart/form-data",
                           data={**fields, "bundle": (io.BytesIO(data), filename)})

    assert_error(post(magenta.read_bytes(), "magenta.mag", headers={}), 401, "unauthorized")
    response = post(magenta.read_bytes(), "performance_with_dynamics_tiny.mag", name="magenta")
    assert response.status_code == 201, response.get_data(as_text=True)
    style = response.get_json()["style"]
    assert style["name"] == "magenta" and style["origin"] == "user" and style["loads"]
    assert style["conditioned"] is False and "card" in style
    assert response.headers["Location"].endswith(f"{API}/styles/magenta")

    listed = {entry["name"]: entry for entry in client.get(f"{API}/styles").get_json()["styles"]}
    assert listed["magenta"]["origin"] == "user"
    download = client.get(f"{API}/styles/magenta/bundle")
    assert download.data == magenta.read_bytes()
    assert "magenta.mag" in download.headers["Content-Disposition"]
    job = generate(app, client, style="magenta", seconds=5, seed=11)
    assert job["result"]["variations"][0]["midi_name"] == "magenta-5s-seed11.mid"
    # A style goes by the name it was imported as, in its result and files too.
    band = (web_bundles_dir / "rock.mag").read_bytes()  # its own metadata says "rock"
    assert post(band, "rock.mag", name="garage").status_code == 201
    job = generate(app, client, style="garage", seconds=5, seed=2)
    assert job["result"]["style"] == "garage"
    assert job["result"]["variations"][0]["midi_name"] == "garage-5s-seed2.mid"

    # Broken, misnamed and duplicate bundles: 422 and nothing left in the styles folder.
    files_before = sorted(path.name for path in styles_dir.iterdir())
    body = assert_invalid(post(b"this is not a bundle" * 50, "broken.mag"), "bundle")
    assert str(styles_dir) not in body["message"] and app.instance_path not in body["message"]
    assert_invalid(post(magenta.read_bytes()[: 40000], "half.mag"), "bundle")
    assert_invalid(post(magenta.read_bytes(), "magenta.zip"), "bundle")
    assert_invalid(post(magenta.read_bytes(), "x.mag", name="rock"), "name")
    assert_invalid(post(magenta.read_bytes(), "x.mag", name="magenta"), "name")
    assert_invalid(post(magenta.read_bytes(), "x.mag", name="Bad Name"), "name")
    assert_invalid(post(magenta.read_bytes(), "x.mag", colour="red"), "colour")
    assert_invalid(client.post(f"{API}/bundles", headers=token, data={"name": "empty"},
                               content_type="multipart/form-data"), "bundle")
    assert_error(client.post(f"{API}/bundles", headers=token, json={"name": "x"}), 400)
    assert sorted(path.name for path in styles_dir.iterdir()) == files_before

    # A bundle that stops loading is listed, with why (and without server paths).
    (styles_dir / "damaged.mag").write_bytes(b"garbage")
    listed = {entry["name"]: entry for entry in client.get(f"{API}/styles").get_json()["styles"]}
    damaged = listed["damaged"]
    assert damaged["loads"] is False and damaged["error"]
    assert str(styles_dir) not in damaged["error"]
    single = client.get(f"{API}/styles/damaged").get_json()
    assert single["loads"] is False and single["error"]
    assert_invalid(client.post(f"{API}/generations", json={"style": "damaged", "seconds": 5}),
                   "style")


# ----- the description ------------------------------------------------------------------

def _api_paths(app) -> set[str]:
    return {re.sub(r"<(?:[^:<>]*:)?([^<>]+)>", r"{\1}", rule.rule)
            for rule in app.url_map.iter_rules() if rule.rule.startswith(API + "/")}


def test_openapi_document_is_valid_and_complete(api_app, client):
    from openapi_spec_validator import validate

    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate(spec)
    paths = _api_paths(api_app)
    assert len(paths) >= 10
    assert paths <= set(spec["paths"]), paths - set(spec["paths"])
    for rule in api_app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            path = re.sub(r"<(?:[^:<>]*:)?([^<>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                operation = spec["paths"][path].get(method.lower())
                assert operation, f"{method} {path} is not described"
                assert operation["summary"] and operation["responses"]
    for name in ("Job", "Style", "Error", "ValidationErrorResponse"):
        assert name in spec["components"]["schemas"]
    errors = spec["paths"][f"{API}/generations"]["post"]["responses"]
    assert {"202", "400", "422", "503"} <= set(errors)


def test_the_documented_generation_fields_are_the_ones_checked(client):
    """The OpenAPI schema, the API's field list and the validation come from one
    declaration: every documented field is accepted, every documented range
    is enforced with the documented bounds, and an undocumented field is refused."""
    spec = client.get(f"{API}/openapi.json").get_json()
    properties = spec["components"]["schemas"]["GenerationRequest"]["properties"]
    assert {"style", "seconds", "bars", "bpm", "temperature", "variations", "seed",
            "feel", "blend", "chords", "form", "key"} <= set(properties)
    assert properties["chords"]["type"] == "string" and properties["chords"]["maxLength"] == 400
    assert "one chord per bar" in properties["chords"]["description"]
    assert properties["form"]["enum"] == ["song", "loop"]
    style = spec["components"]["schemas"]["Style"]
    assert "follows_chords" in style["required"] and "follows_chords" in style["properties"]
    checked = 0
    for name, schema in properties.items():
        if "maximum" not in schema or name in ("density",):  # density: conditioned styles
            continue
        over = schema["maximum"] + (1 if schema["type"] == "integer" else 0.5)
        body = {"style": "rock", name: over}
        if name == "bars":
            body["bpm"] = 300  # 257 bars at 300 BPM is under ten minutes: the range speaks
        message = assert_invalid(client.post(f"{API}/generations", json=body), name)["fields"][name]
        assert f"{schema['maximum']:g}" in message, (name, message)
        checked += 1
    assert checked >= 6
    for name, schema in properties.items():
        if "enum" in schema:
            assert_invalid(client.post(f"{API}/generations",
                                       json={"style": "rock", name: "no-such-choice"}), name)
    assert_invalid(client.post(f"{API}/generations", json={"style": "rock", "blend_with": "x"}),
                   "blend_with")


def test_docs_page_lists_every_endpoint(api_app, client):
    response = client.get(f"{API}/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path in _api_paths(api_app):
        assert path in page, path
    for method in ("GET", "POST", "DELETE"):
        assert method in page
    assert "curl -X POST" in page and "Retry-After" in page
    assert "seconds" in page and "temperature" in page  # the body's fields


# ----- errors everywhere under /api/ -----------------------------------------------------

def test_unknown_address_and_wrong_method(client):
    assert_error(client.get(f"{API}/nope"), 404, "not_found")
    assert_error(client.delete(f"{API}/styles"), 405, "method_not_allowed")
    assert_error(client.get(f"{API}/generations"), 405)


def test_unexpected_error_and_too_large_upload(make_app):
    app = make_app(MAX_CONTENT_LENGTH=4096)

    def explode():
        raise RuntimeError("secret internal detail")

    app.add_url_rule(f"{API}/explode", "explode", explode)
    client = app.test_client()
    response = client.get(f"{API}/explode")
    body = assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "RuntimeError" not in body["message"]
    response = client.post(f"{API}/bundles", content_type="multipart/form-data",
                           data={"bundle": (io.BytesIO(b"x" * 10000), "big.mag")})
    assert_error(response, 413)
