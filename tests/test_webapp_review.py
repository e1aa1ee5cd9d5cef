"""The website as a careless user or an attacker uses it: malformed bundles,
hostile uploads, odd parameters, failing trainings and races. Each test
drives the real app (Flask's test client, real worker threads)."""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import mido
import pytest
from note_seq.protobuf import generator_pb2

from tests.conftest import magenta_bundle_path, wait_for_job
from webapp.jobs.store import DONE, FAILED

API = "/api/v1"


# ----- helpers ------------------------------------------------------------------------

def midi_bytes(seed: int = 0, notes: int = 30, channel: int = 0) -> bytes:
    rng = random.Random(seed)
    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    for index in range(notes):
        pitch = 36 if channel == 9 else rng.randrange(48, 84)
        track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=80,
                                  time=0 if index == 0 else 60))
        track.append(mido.Message("note_off", channel=channel, note=pitch, velocity=0,
                                  time=120))
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def bundle_with_metadata(metadata: dict) -> bytes:
    """Magenta's tiny bundle with our metadata JSON replaced by `metadata`: what
    anyone can write into a .mag and import."""
    proto = generator_pb2.GeneratorBundle()
    proto.ParseFromString(magenta_bundle_path("performance_with_dynamics").read_bytes())
    proto.bundle_details.description = json.dumps({"format": "perfrnn-bundle/1", **metadata})
    return proto.SerializeToString()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def error_of(response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert "Traceback" not in response.get_data(as_text=True)
    return body["fields"][field] if field else body["message"]


def page_text(response) -> str:
    return response.get_data(as_text=True)


def tiny_presets():
    from training.pipeline import Preset

    return {"quick": Preset("quick", "tiny", (16,), 4, 2, 32, 2, 1)}


def train(client, name: str, files: list, **fields):
    return client.post(f"{API}/trainings", content_type="multipart/form-data",
                       data={"name": name, "preset": "quick", "files": files, **fields})


# ----- imported bundles: their metadata is written by anyone --------------------------------

MALFORMED = {
    "metrics-list": {"style": "x", "metrics": [1, 2]},
    "controls-list": {"style": "x", "default_controls": ["key"]},
    "card-number": {"style": "x", "card": 5},
    "bpm-zero": {"style": "x", "default_bpm": 0},
    "bpm-text": {"style": "x", "default_bpm": "fast"},
    "tracks-text": {"style": "x", "tracks": "abc"},
    "no-style": {"description": "no style name"},
    "types-text": {"style": "x", "types": [{"name": 5, "program": 3}]},
    "metre-seven-eight": {"style": "x", "time_signature": "7/8"},
    "metre-list": {"style": "x", "time_signature": [4, 4]},
}


def test_a_bundle_with_malformed_metadata_is_refused_and_breaks_no_page(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    styles_dir = app.extensions["perfrnn"].styles_dir
    for name, metadata in MALFORMED.items():
        response = client.post(f"{API}/bundles", content_type="multipart/form-data", data={
            "name": name, "bundle": (io.BytesIO(bundle_with_metadata(metadata)), "b.mag")})
        message = error_of(response, 422, "bundle")
        assert "metadata is malformed" in message, (name, message)
        assert app.instance_path not in message
    response = client.post("/styles/import", content_type="multipart/form-data", data={
        "name": "by-page", "bundle": (io.BytesIO(bundle_with_metadata(MALFORMED["metrics-list"])),
                                      "b.mag")})
    assert response.status_code == 400 and "metadata is malformed" in page_text(response)
    assert not styles_dir.exists() or not list(styles_dir.iterdir())

    # One that arrives another way (copied in, synced from a bucket) is listed as
    # not loading; every page still works and generating with it says why.
    styles_dir.mkdir(parents=True, exist_ok=True)
    for name in ("metrics-list", "controls-list", "card-number", "tracks-text"):
        (styles_dir / f"{name}.mag").write_bytes(bundle_with_metadata(MALFORMED[name]))
    for url in ("/", "/styles", f"{API}/styles", f"{API}/styles/controls-list"):
        assert client.get(url).status_code == 200, url
    listed = {style["name"]: style for style in client.get(f"{API}/styles").get_json()["styles"]}
    assert listed["metrics-list"]["loads"] is False
    assert "malformed" in listed["metrics-list"]["error"]
    assert str(styles_dir) not in listed["tracks-text"]["error"]
    message = error_of(client.post(f"{API}/generations",
                                   json={"style": "controls-list", "seconds": 5}), 422, "style")
    assert "malformed" in message


def test_an_imported_model_card_cannot_inject_html(make_app):
    app = make_app()
    client = app.test_client()
    hostile = {"style": "<script>alert(1)</script>",
               "description": '"><img src=x onerror=alert(1)>',
               "card": ("# <script>alert(2)</script>\n| <b>cell</b> |\n- `<i>x</i>`\n"
                        "**<svg onload=alert(3)>**"),
               "provenance": [{"source": "<script>alert(4)</script>", "licence": "<b>MIT</b>"}],
               "training": {"<em>key</em>": "<em>value</em>"},
               "types": [{"name": "<script>alert(5)</script>", "program": 3}]}
    response = client.post(f"{API}/bundles", content_type="multipart/form-data", data={
        "name": "hostile", "bundle": (io.BytesIO(bundle_with_metadata(hostile)), "h.mag")})
    assert response.status_code == 201, page_text(response)
    for url in ("/", "/styles", "/?style=hostile"):
        html = page_text(client.get(url))
        for raw in ("<script>alert", "<img src=x", "<svg", "<b>", "<em>", "<i>x"):
            assert raw not in html, (url, raw)
    assert "&lt;script&gt;alert(2)" in page_text(client.get("/styles"))


def test_import_says_where_a_bad_name_came_from_and_refuses_a_name_being_trained(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    store = app.extensions["perfrnn"].store
    good = magenta_bundle_path("performance_with_dynamics").read_bytes()

    def post(data: bytes, filename: str, **fields):
        return client.post(f"{API}/bundles", content_type="multipart/form-data",
                           data={**fields, "bundle": (io.BytesIO(data), filename)})

    message = error_of(post(good, "Mélodie Été.mag"), 422, "name")
    assert "the file's name" in message and "give the style a name" in message
    # A style with this name is being trained: the import would make it fail at its end.
    store.create("training", {"name": "busy", "preset": "quick", "kind": None, "uploads": []})
    assert "being trained" in error_of(post(good, "x.mag", name="busy"), 422, "name")
    assert post(good, "x.mag", name="free").status_code == 201
    # The page says why a bundle does not load without the server's folders.
    response = client.post("/styles/import", content_type="multipart/form-data",
                           data={"bundle": (io.BytesIO(b"garbage" * 100), "junk.mag")})
    assert response.status_code == 400
    assert "not a bundle that loads" in page_text(response)
    assert app.instance_path not in page_text(response) and ".part" not in page_text(response)


# ----- primers ----------------------------------------------------------------------------

def mxl(score: bytes) -> bytes:
    container = (b'<?xml version="1.0"?><container><rootfiles>'
                 b'<rootfile full-path="score.xml"/></rootfiles></container>')
    return zip_bytes({"META-INF/container.xml": container, "score.xml": score})


def test_a_compressed_musicxml_primer_that_is_a_zip_bomb_is_refused(make_app, monkeypatch):
    app = make_app()
    client = app.test_client()

    def post(filename: str, data: bytes):
        return client.post(f"{API}/generations", content_type="multipart/form-data", data={
            "style": "piano", "seconds": "5", "primer": (io.BytesIO(data), filename)})

    bomb = mxl(b"<a>" + b" " * (30 << 20) + b"</a>")  # 30 MiB from about 30 KiB
    assert len(bomb) < 100_000
    message = error_of(post("bomb.mxl", bomb), 422, "primer")
    assert "bomb.mxl" in message and "zip bomb" in message
    # Within the ratio, but more than a primer needs.
    monkeypatch.setattr("webapp.web.submit.MAX_PRIMER_UNPACKED_BYTES", 1000)
    message = error_of(post("long.mxl", mxl(bytes(random.Random(1).randbytes(3000).hex(),
                                                  "ascii"))), 422, "primer")
    assert "more than a primer may" in message
    # A primer that does not parse is named without the server's temporary folder.
    message = error_of(post("broken.mid", b"MThd and then nothing"), 422, "primer")
    assert message.startswith("broken.mid: ") and "/tmp" not in message and "cannot read" \
        not in message
    assert not list((Path(app.instance_path) / "storage").rglob("*.*"))


# ----- parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field", [
    ({"seed": 10 ** 400}, "seed"),
    ({"seconds": 10 ** 400}, "seconds"),
    ({"length": 10 ** 400}, "length"),
    ({"type": "\u00b2"}, "type"),            # a superscript two: a digit to str.isdigit
    ({"type": "9" * 5000}, "type"),          # more digits than int() takes
])
def test_odd_numbers_are_field_errors_not_server_errors(make_app, fields, field):
    client = make_app().test_client()
    response = client.post(f"{API}/generations", json={"style": "rock", "seconds": 5, **fields})
    assert error_of(response, 422, field)


def test_odd_variation_numbers_in_a_download_address(make_app):
    app = make_app()
    client = app.test_client()
    response = client.post(f"{API}/generations", json={"style": "rock", "seconds": 5, "seed": 1})
    job_id = response.get_json()["job"]["id"]
    assert wait_for_job(app, job_id).state == DONE
    url = f"{API}/generations/{job_id}/midi"
    assert "whole number" in error_of(client.get(url, query_string={"variation": "\u00b2"}), 400)
    assert "no variation" in error_of(client.get(url, query_string={"variation": "9" * 5000}),
                                      404)
    assert client.get(url, query_string={"variation": "0"}).data.startswith(b"MThd")


# ----- training that fails ----------------------------------------------------------------

def test_a_training_with_no_usable_music_says_so_in_the_websites_words(make_app):
    app = make_app(WTF_CSRF_ENABLED=False, TRAINING_PRESETS=tiny_presets())
    client = app.test_client()
    training_dir = app.extensions["perfrnn"].training_dir
    cases = {
        "zip-of-text": ([(io.BytesIO(zip_bytes({"readme.txt": b"hi"})), "songs.zip")],
                        "no music files found in the uploaded files"),
        "only-drums": ([(io.BytesIO(midi_bytes(channel=9)), "beat.mid")],
                       'the only file holds only drums (MIDI channel 10), and a pitched style '
                       'needs pitched notes; to make a drum style from them, choose the kind '
                       '"drums" ("Drums only" on the train page)'),
        "silent": ([(io.BytesIO(midi_bytes(notes=0)), f"s{n}.mid") for n in range(3)],
                   "no notes in it"),
    }
    jobs = {}
    for name, (files, _) in cases.items():
        response = train(client, name, files)
        assert response.status_code == 202, page_text(response)
        jobs[name] = response.get_json()["job"]["id"]
    for name, (_, words) in cases.items():
        job = wait_for_job(app, jobs[name], 60)
        assert job.state == FAILED
        assert words in job.error, job.error
        assert "--kind" not in job.error and "internal error" not in job.error
        assert app.instance_path not in job.error
        shown = page_text(client.get(f"/jobs/{jobs[name]}"))
        assert words.replace('"', "&#34;") in shown or words in shown
        # Nothing of it is left in the training folder.
        assert not (training_dir / name).exists()


def test_many_training_files_in_one_upload_and_names_that_climb_out(make_app):
    app = make_app()
    app.extensions["perfrnn_queue"].stop()  # the jobs stay queued: only the upload counts
    client = app.test_client()
    storage = Path(app.instance_path) / "storage"
    files = [(io.BytesIO(b"MThd"), f"piece{number}.mid") for number in range(1100)]
    files += [(io.BytesIO(b"MThd"), "../../../evil.mid"), (io.BytesIO(b"MThd"), "..\\..\\win.mid")]
    response = train(client, "folder-of-midi", files)
    assert response.status_code == 202, page_text(response)
    uploads = response.get_json()["job"]["params"]["uploads"]
    assert len(uploads) == 1102 and Path(uploads[-2]).name == "evil.mid"
    assert Path(uploads[-1]).name.endswith("win.mid") and "\\" not in uploads[-1]
    folder = {Path(key).parent for key in uploads}
    assert len(folder) == 1 and all((storage / key).is_file() for key in uploads)
    assert sorted(path.name for path in storage.iterdir()) == ["uploads"]
    too_many = [(io.BytesIO(b"MThd"), f"piece{number}.mid") for number in range(2001)]
    assert "at most 2000 files" in error_of(train(client, "too-many", too_many), 422, "files")


def test_a_cancelled_run_does_not_block_its_name_for_another_preset(make_app):
    app = make_app(TRAINING_PRESETS=tiny_presets())
    client = app.test_client()
    # What a run of "jazz" with 8-unit layers leaves when it is cancelled.
    run_dir = app.extensions["perfrnn"].training_dir / "jazz" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "train_config.json").write_text(json.dumps(
        {"config": "performance_with_dynamics", "layer_sizes": [8], "sequence_length": 32,
         "batch_size": 2}))
    files = [(io.BytesIO(midi_bytes(seed)), f"song{seed}.mid") for seed in range(2)]
    response = train(client, "jazz", files)
    assert response.status_code == 202
    job = wait_for_job(app, response.get_json()["job"]["id"], 90)
    assert job.state == DONE, job.error
    assert client.get(f"{API}/styles/jazz").get_json()["loads"] is True


# ----- races and restarts -------------------------------------------------------------------

def test_a_cancel_that_arrives_as_the_job_finishes_says_it_had_finished(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    app.extensions["perfrnn_queue"].stop()
    store = app.extensions["perfrnn"].store
    client = app.test_client()
    job = store.create("generation", {"style": "rock", "seconds": 5.0, "seed": 1,
                                      "temperature": 1.0, "variations": 1})
    store.start(job.id)
    request_cancel = store.request_cancel

    def worker_finishes_first(job_id):  # the worker's last write lands just before
        store.finish(job_id, {"style": "rock", "seed": 1, "variations": []})
        return request_cancel(job_id)

    store.request_cancel = worker_finishes_first
    client.post(f"/jobs/{job.id}/cancel")
    flashes = page_text(client.get(f"/jobs/{job.id}"))
    assert "already finished (done)" in flashes and "Asked the job to stop" not in flashes
    assert store.get(job.id).state == DONE


def test_after_a_restart_a_job_that_was_running_shows_why_it_failed(make_app):
    first = make_app()
    first.extensions["perfrnn_queue"].stop()
    store = first.extensions["perfrnn"].store
    running = store.create("generation", {"style": "rock", "seconds": 5.0, "seed": 1,
                                          "temperature": 1.0, "variations": 1})
    store.start(running.id)
    again = make_app()  # the same instance folder: a restarted server
    client = again.test_client()
    html = page_text(client.get(f"/jobs/{running.id}"))
    assert 'id="job-error"' in html and "server stopped while this job was running" in html
    assert 'id="cancel-button"' not in html
    events = "".join(chunk.decode() for chunk in client.get(
        f"{API}/jobs/{running.id}/events").response)
    assert events.count("event: job") == 1 and '"state":"failed"' in events
