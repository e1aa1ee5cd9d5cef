"""Safe on the internet: bounded work per request, and clear refusals.

Each test here stands for a way the site was attacked: a request that cost
unbounded work or memory, or one that got a 500 instead of a clear 4xx.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import mido
import pytest

from perfrnn.errors import PerfRNNError
from perfrnn.options import MAX_PRIMER_NOTES, MAX_PRIMER_SECONDS, GenerationOptions
from tests.conftest import poll_until
from webapp.web.schema import MAX_PRIMER_BYTES

API = "/api/v1"


def far_apart_notes() -> bytes:
    """50 bytes: two notes 3,000 beats apart at the slowest tempo MIDI can say
    (16.7 s a beat), a primer of about 50,000 seconds."""
    song = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=0xFFFFFF))
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=3000 * 96))
    track.append(mido.Message("note_on", note=62, velocity=80, time=0))
    track.append(mido.Message("note_off", note=62, velocity=0, time=96))
    data = io.BytesIO()
    song.save(file=data)
    return data.getvalue()


def dense_notes(count: int) -> bytes:
    """`count` short notes in a few seconds."""
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    song.tracks.append(track)
    for index in range(count):
        track.append(mido.Message("note_on", note=40 + index % 40, velocity=80, time=1))
        track.append(mido.Message("note_off", note=40 + index % 40, velocity=0, time=1))
    data = io.BytesIO()
    song.save(file=data)
    return data.getvalue()


def post_primer(client, data: bytes, name: str = "primer.mid"):
    return client.post(f"{API}/generations", content_type="multipart/form-data",
                       data={"style": "piano", "seconds": "5",
                             "primer": (io.BytesIO(data), name)})


@pytest.fixture
def app(make_app):
    return make_app()


def test_a_primer_past_its_limits_is_refused_naming_the_limit(app):
    client = app.test_client()
    store = app.extensions["perfrnn"].store
    storage_root = app.extensions["perfrnn"].storage.root
    long = post_primer(client, far_apart_notes())
    assert len(far_apart_notes()) < 100
    assert long.status_code == 422, long.get_data(as_text=True)
    assert f"at most {MAX_PRIMER_SECONDS:g} seconds" in long.get_json()["fields"]["primer"]
    crowded = post_primer(client, dense_notes(MAX_PRIMER_NOTES + 500))
    assert crowded.status_code == 422
    assert f"at most {MAX_PRIMER_NOTES:,}" in crowded.get_json()["fields"]["primer"]
    large = post_primer(client, b"MThd" + b"\0" * (MAX_PRIMER_BYTES + 10))
    assert large.status_code == 413
    body = large.get_json()
    assert body["error"] == "too_large" and f"{MAX_PRIMER_BYTES >> 10:,} KiB" in body["message"]
    # Nothing was queued or kept.
    assert store.count(("queued", "running", "done", "failed")) == 0
    assert not list(storage_root.rglob("*.mid"))
    # A primer within the limits is taken.
    assert post_primer(client, dense_notes(200)).status_code == 202


def test_the_sampler_itself_refuses_a_primer_past_the_limits(piano_sampler):
    import note_seq

    primer = note_seq.midi_to_note_sequence(far_apart_notes())
    with pytest.raises(PerfRNNError, match="a primer may last at most"):
        piano_sampler.generate(GenerationOptions(seconds=1, seed=1), primer=primer)


@pytest.mark.parametrize("url", [f"{API}/generations", f"{API}/trainings", f"{API}/bundles"])
def test_a_form_part_without_a_name_is_a_clear_400(app, url):
    body = (b'--XX\r\nContent-Disposition: form-data; name="style"\r\n\r\npiano\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="colour"\r\n\r\nred\r\n'
            b'--XX\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--XX--\r\n')
    response = app.test_client().post(url, data=body,
                                      content_type="multipart/form-data; boundary=XX")
    assert response.status_code == 400
    assert "has no name" in response.get_json()["message"]


def test_a_training_piece_past_the_limits_is_skipped_naming_the_limit(tmp_path):
    from training.prepare import MAX_PIECE_SECONDS, SKIP_TOO_LARGE, prepare_corpus

    music = tmp_path / "music"
    music.mkdir()
    (music / "far.mid").write_bytes(far_apart_notes())
    for index in range(2):
        (music / f"fine{index}.mid").write_bytes(dense_notes(300 + index))
    result = prepare_corpus("limits", [music], tmp_path / "data")
    skipped = {record.source: record for record in result.skipped}
    assert list(skipped) == ["far.mid"]
    assert skipped["far.mid"].reason_code == SKIP_TOO_LARGE
    assert f"at most {MAX_PIECE_SECONDS:,.0f}" in skipped["far.mid"].reason
    assert len(result.used) == 2


# ----- cross-site requests and headers ---------------------------------------------------

def test_another_sites_page_cannot_change_anything(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    body = {"style": "piano", "seconds": 5}
    evil = {"Origin": "https://evil.example"}
    for headers in (evil, {"Referer": "https://evil.example/page"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(f"{API}/generations", json=body, headers=headers)
        assert response.status_code == 403, headers
        assert response.get_json()["error"] == "cross_site"
        page = client.post("/", data=body, headers=headers)
        assert page.status_code == 403 and b"only from its own pages" in page.data
    for path in (f"{API}/trainings", f"{API}/bundles"):
        assert client.post(path, data={}, headers=evil).status_code == 403
    assert client.delete(f"{API}/jobs/0123456789abcdef", headers=evil).status_code == 403
    assert app.extensions["perfrnn"].store.count(("queued", "running", "done")) == 0
    # The site's own pages, and programs that send no Origin, are served.
    own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post(f"{API}/generations", json=body, headers=own).status_code == 202
    assert client.post(f"{API}/generations", json=body).status_code == 202
    assert client.get(f"{API}/styles", headers=evil).status_code == 200  # reading is fine


def test_every_answer_carries_the_security_headers(make_app):
    client = make_app().test_client()
    for path in ("/", "/train", "/styles", f"{API}/styles", f"{API}/nope", "/static/app.js"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        # no inline script or style, no JavaScript eval (WebAssembly only, for the synthesizer)
        sources = policy.replace(";", " ").split()
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Server" not in headers
    client.get("/")  # the session cookie is made on the first page
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.same_site == "Lax" and cookie.http_only


def test_the_pages_need_no_inline_script_or_style(make_app):
    import re

    client = make_app().test_client()
    for path in ("/", "/train", "/styles", f"{API}/docs"):
        page = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", page)
        assert not re.search(r"\sstyle=[\"']", page) and "<style" not in page, path
        assert not re.search(r"\son[a-z]+=", page), path  # no onclick= and the like


# ----- limits per client -----------------------------------------------------------------

def test_a_flood_from_one_address_gets_429_while_another_is_served(make_app):
    app = make_app(RATE_LIMIT_PER_SECOND=5, RATE_LIMIT_BURST=20)
    client = app.test_client()
    answers = [client.get(f"{API}/styles") for _ in range(40)]
    limited = [response for response in answers if response.status_code == 429]
    assert 15 <= len(limited) <= 25
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].get_json()["error"] == "too_many_requests"
    other = client.get(f"{API}/styles", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert other.status_code == 200


def test_wrong_training_tokens_make_the_client_wait(make_app):
    app = make_app(TRAINING_TOKEN="s3cret")
    client = app.test_client()
    wrong = {"X-Training-Token": "guess"}
    statuses = [client.post(f"{API}/bundles", headers=wrong, data={},
                            content_type="multipart/form-data").status_code
                for _ in range(8)]
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:]
    waited = client.post(f"{API}/bundles", headers=wrong, data={},
                         content_type="multipart/form-data")
    assert waited.status_code == 429 and int(waited.headers["Retry-After"]) >= 1
    # Someone else is not slowed down by it.
    elsewhere = client.post(f"{API}/bundles", headers=wrong, data={},
                            content_type="multipart/form-data",
                            environ_base={"REMOTE_ADDR": "10.0.0.8"})
    assert elsewhere.status_code == 401


def test_one_client_cannot_fill_the_shared_queue(make_app):
    app = make_app(MAX_JOBS_PER_CLIENT=3, QUEUE_LIMIT=20)
    app.extensions["perfrnn_queue"].stop()  # jobs stay queued
    client = app.test_client()
    body = {"style": "piano", "seconds": 5}
    statuses = [client.post(f"{API}/generations", json=body).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    refused = client.post(f"{API}/generations", json=body)
    assert "Retry-After" in refused.headers and "wait for one" in refused.get_json()["message"]
    other = client.post(f"{API}/generations", json=body,
                        environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 202


def test_progress_streams_are_capped(make_app):
    app = make_app(MAX_EVENT_STREAMS=2)
    app.extensions["perfrnn_queue"].stop()  # the job stays queued, its stream open
    client = app.test_client()
    job = client.post(f"{API}/generations", json={"style": "piano", "seconds": 5}).get_json()
    url = f"{API}/jobs/{job['job']['id']}/events"
    open_streams = [client.get(url, buffered=False) for _ in range(2)]
    for stream in open_streams:
        assert stream.status_code == 200
        next(stream.response)  # the stream has begun
    refused = client.get(url)
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    open_streams.pop().close()  # a listener who leaves frees a slot
    again = client.get(url, buffered=False)
    assert again.status_code == 200
    again.close()
    open_streams.pop().close()
    # A HEAD request never reads the body; the server closes it, and its slot comes back.
    for _ in range(5):
        head = client.head(url)
        assert head.status_code == 200
        head.close()
    last = client.get(url, buffered=False)
    assert last.status_code == 200
    last.close()


def test_a_client_id_names_only_jobs_from_its_own_address(make_app):
    app = make_app()
    app.extensions["perfrnn_queue"].stop()
    client = app.test_client()
    body = {"style": "piano", "seconds": 5}
    claim = {"X-Client-Id": "alice"}
    client.post(f"{API}/generations", json=body, headers=claim)
    store = app.extensions["perfrnn"].store
    [job] = store._query("SELECT * FROM jobs")
    assert job.owner != "alice" and job.owner.startswith("client-")
    client.post(f"{API}/generations", json=body, headers=claim,
                environ_base={"REMOTE_ADDR": "10.0.0.10"})
    owners = {job.owner for job in store._query("SELECT * FROM jobs")}
    assert len(owners) == 2  # the same id from another address is another owner


def test_only_the_client_that_made_a_job_can_see_or_cancel_it(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    app.extensions["perfrnn_queue"].stop()  # the job stays queued
    mine, theirs = app.test_client(), app.test_client()
    job = mine.post(f"{API}/generations", json={"style": "piano", "seconds": 5}).get_json()
    job_id = job["job"]["id"]
    elsewhere = {"REMOTE_ADDR": "10.0.0.11"}
    for path in (f"{API}/jobs/{job_id}", f"{API}/jobs/{job_id}/events",
                 f"{API}/generations/{job_id}/midi", f"/jobs/{job_id}"):
        assert theirs.get(path, environ_base=elsewhere).status_code == 404, path
    assert theirs.delete(f"{API}/jobs/{job_id}", environ_base=elsewhere).status_code == 404
    assert mine.get(f"{API}/jobs/{job_id}").status_code == 200
    # A browser's job is its session's, wherever the browser is.
    page = mine.post("/", data={"style": "piano", "length": "5", "unit": "seconds"},
                     environ_base=elsewhere)
    assert page.status_code in (302, 303)
    page_job = page.headers["Location"].rstrip("/").split("/")[-1]
    assert mine.get(f"/jobs/{page_job}", environ_base=elsewhere).status_code == 200
    assert theirs.get(f"/jobs/{page_job}", environ_base=elsewhere).status_code == 404


# ----- nothing left behind ---------------------------------------------------------------

def test_a_failed_training_leaves_no_uploads_and_a_cancel_survives_a_restart(make_app, tmp_path):
    import zipfile

    from tests.conftest import wait_for_job

    app = make_app()
    client = app.test_client()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "no music here")
    response = client.post(f"{API}/trainings", content_type="multipart/form-data",
                           data={"name": "nothing", "files": (io.BytesIO(archive.getvalue()),
                                                             "songs.zip")})
    assert response.status_code == 202, response.get_data(as_text=True)
    job = wait_for_job(app, response.get_json()["job"]["id"])
    assert job.state == "failed"
    storage_root = app.extensions["perfrnn"].storage.root
    assert not [path for path in storage_root.rglob("*") if path.is_file()]

    # A running job whose user cancelled it is cancelled, not failed, after a restart.
    store = app.extensions["perfrnn"].store
    running = store.create("generation", {"style": "piano"})
    store.start(running.id)
    store.request_cancel(running.id)
    store.recover()
    assert store.get(running.id).state == "cancelled"


def test_a_damaged_result_file_is_a_clear_410_and_a_killed_jobs_files_go(make_app):
    from tests.conftest import wait_for_job

    app = make_app(RENDER_AUDIO=False)
    client = app.test_client()
    job_id = client.post(f"{API}/generations",
                         json={"style": "piano", "seconds": 5, "seed": 1}).get_json()["job"]["id"]
    job = wait_for_job(app, job_id)
    assert job.state == "done"
    storage = app.extensions["perfrnn"].storage
    midi_key = job.result["variations"][0]["midi"]
    url = f"{API}/generations/{job_id}/midi"
    assert client.get(url).data == storage.get(midi_key)
    storage.put(midi_key, b"MThd swapped for something else")
    damaged = client.get(url)
    assert damaged.status_code == 410 and damaged.get_json()["error"] == "damaged"
    storage.delete_prefix(f"jobs/{job_id}")
    assert client.get(url).status_code == 404

    # A job the server was running when it died leaves no partial files after a restart.
    store = app.extensions["perfrnn"].store
    killed = store.create("generation", {"style": "piano"})
    store.start(killed.id)
    storage.put(f"jobs/{killed.id}/piano-5s-seed1.mid", b"MThd half written")
    restarted = make_app(RENDER_AUDIO=False)
    assert restarted.extensions["perfrnn"].store.get(killed.id).state == "failed"
    assert not storage.exists(f"jobs/{killed.id}/piano-5s-seed1.mid")


# ----- the campaign: every malformed upload on every upload path ---------------------------

def test_every_malformed_upload_gets_a_clear_answer_on_every_path(make_app, tmp_path):
    """At least 40 malformed or hostile files (tests/malformed.py), each sent as a
    primer, a bundle and training music, through the API and the pages: each
    gets a 4xx with its reason or a job that ends with one; nothing is written
    outside the upload area; the server keeps serving, and an unrelated job
    finishes meanwhile."""
    from tests.conftest import wait_for_job
    from tests.malformed import malformed_files
    from training.pipeline import Preset

    tiny = {"quick": Preset("quick", "tiny", (16,), 2, 2, 32, 2, 1)}
    app = make_app(WTF_CSRF_ENABLED=False, TRAINING_PRESETS=tiny, RENDER_AUDIO=False)
    client = app.test_client()
    bystander = app.test_client()
    unrelated = bystander.post(f"{API}/generations", json={"style": "rock", "seconds": 5},
                               environ_base={"REMOTE_ADDR": "10.0.0.20"}).get_json()["job"]["id"]
    files = malformed_files()
    assert len(files) >= 40
    jobs, answers = [], 0
    for number, (name, data, why) in enumerate(files):
        sends = [
            (f"{API}/generations", {"style": "piano", "seconds": "5",
                                    "primer": (io.BytesIO(data), name)}),
            ("/", {"style": "piano", "length": "5", "unit": "seconds",
                   "primer": (io.BytesIO(data), name)}),
            (f"{API}/bundles", {"bundle": (io.BytesIO(data), name)}),
            ("/styles/import", {"bundle": (io.BytesIO(data), name)}),
            (f"{API}/trainings", {"name": f"bad-api-{number}", "start": "scratch",
                                  "files": (io.BytesIO(data), name)}),
            ("/train", {"name": f"bad-page-{number}", "start": "scratch", "preset": "quick",
                        "kind": "auto", "files": (io.BytesIO(data), name)}),
        ]
        for path, form in sends:
            response = client.post(path, data=form, content_type="multipart/form-data")
            answers += 1
            assert response.status_code < 500, (path, why, response.get_data(as_text=True))
            if response.status_code in (202, 303):  # taken: a job that must end
                location = (response.get_json()["job"]["id"] if response.is_json
                            else response.headers["Location"].rstrip("/").split("/")[-1])
                if path != "/styles/import":
                    jobs.append((location, path, why))
            elif response.status_code >= 400:
                text = response.get_data(as_text=True)
                assert "Traceback" not in text and str(tmp_path) not in text, (path, why)
        for job_id, path, why in jobs:  # one file's jobs end before the next file's
            job = wait_for_job(app, job_id, 120)
            assert job.state in ("done", "failed"), (path, why, job.state)
            if job.state == "failed":
                assert job.error and "internal error" not in job.error, (path, why, job.error)
        jobs.clear()
    assert answers >= 240
    assert wait_for_job(app, unrelated, 120).state == "done"
    assert client.get(f"{API}/styles").status_code == 200
    # Nothing outside the upload area: no file escaped, no style was added.
    instance = Path(app.instance_path)
    allowed = ("storage/uploads/", "storage/jobs/", "styles/", "training/")
    for path in instance.rglob("*"):
        relative = path.relative_to(instance).as_posix()
        if path.is_file() and "/" in relative:
            assert relative.startswith(allowed), relative
    assert not [path for path in tmp_path.parent.rglob("*evil*")]
    # Files that hold real music under a hostile name train a style, named as asked.
    styles = [path.name for path in (instance / "styles").glob("*.mag")]
    assert all(re.fullmatch(r"bad-(api|page)-\d+\.mag", name) for name in styles), styles
    assert not [path for path in (instance / "training").rglob("*") if path.is_file()]


def test_waiting_jobs_are_taken_in_turn_across_clients():
    import threading

    from webapp.jobs.queues import LocalQueue

    ran, gate = [], threading.Event()

    def run(job_ids, more):
        ran.extend(job_ids)
        if job_ids == ["a1"]:
            gate.wait(5)  # the first job holds the only worker while the others queue

    queue = LocalQueue(run, {"generation": 1}, limit=10)
    try:
        queue.submit(waiting_job("a1", "alice"))
        poll_until(lambda: ran, 5, "the first job to start", interval=0.01)
        for job in (waiting_job("a2", "alice"), waiting_job("a3", "alice"),
                    waiting_job("a4", "alice"), waiting_job("b1", "bob"),
                    waiting_job("c1", "carol"), waiting_job("b2", "bob")):
            queue.submit(job)
        gate.set()
        poll_until(lambda: len(ran) == 7, 5, "every job to run", interval=0.01)
    finally:
        queue.stop()
    # Bob and Carol wait one turn each, not behind all of Alice's jobs.
    assert ran == ["a1", "a2", "b1", "c1", "a3", "b2", "a4"]


def waiting_job(job_id, client, style="piano", kind="generation"):
    from webapp.jobs.store import QUEUED, Job

    return Job(id=job_id, kind=kind, state=QUEUED, owner=None, params={"style": style},
               client=client)


def test_a_running_batch_takes_more_of_its_style_only_while_no_other_style_waits():
    from webapp.jobs.queues import FairQueue

    waiting = FairQueue()
    waiting.put("a1", "alice", batch_key="rock")
    waiting.put("b1", "bob", batch_key="rock")
    assert waiting.take("rock", 5, unless_others=True) == ["a1", "b1"]
    waiting.put("c1", "carol", batch_key="piano")
    waiting.put("a2", "alice", batch_key="rock")
    assert waiting.take("rock", 5, unless_others=True) == []  # Carol's piano goes first
    assert waiting.take("rock", 5) == ["a2"]


def test_a_worker_takes_the_waiting_generations_of_one_style_together():
    import threading

    from webapp.jobs.queues import LocalQueue

    ran, gate = [], threading.Event()

    def run(job_ids, more):
        ran.append(job_ids)
        if job_ids == ["a1"]:
            gate.wait(5)
        if job_ids[0] == "a2":  # while Bob's piano waits, no more rock joins the batch
            assert more(5) == []

    queue = LocalQueue(run, {"generation": 1, "training": 1}, limit=10, batch=3)
    try:
        queue.submit(waiting_job("a1", "alice", "rock"))
        poll_until(lambda: ran, 5, "the first job to start", interval=0.01)
        for job in (waiting_job("a2", "alice", "rock"), waiting_job("b1", "bob", "piano"),
                    waiting_job("t1", "bob", "rock", kind="training"),
                    waiting_job("t2", "carol", "rock", kind="training"),
                    waiting_job("c1", "carol", "rock"), waiting_job("a3", "alice", "rock"),
                    waiting_job("d1", "dave", "rock")):
            queue.submit(job)
        gate.set()
        poll_until(lambda: sum(map(len, ran)) == 8, 5, "every job to run", interval=0.01)
    finally:
        queue.stop()
    generations = [ids for ids in ran if not ids[0].startswith("t")]
    # In turn across clients, up to three rock generations at once; never a training.
    assert generations == [["a1"], ["a2", "c1", "d1"], ["b1"], ["a3"]]
    assert sorted(ids for ids in ran if ids[0].startswith("t")) == [["t1"], ["t2"]]


class RealServer:
    """`python -m webapp` on 127.0.0.1 in a process of its own, with `settings`
    as environment variables; killed at the end of its `with` block."""

    def __init__(self, instance: Path, bundles: Path, **settings: str):
        import os
        import socket
        import subprocess
        import sys

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = dict(os.environ, PERFRNN_INSTANCE=str(instance), PRELOAD_STYLES="0",
                   BUNDLES_DIR=str(bundles), **settings)
        self.log = (instance / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webapp", "--port", str(port)],
            cwd=Path(__file__).resolve().parent.parent, env=env, stdout=self.log,
            stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"

    def __enter__(self):
        poll_until(lambda: _try(lambda: self.call("GET", "/api/v1/styles")), 120,
                   "the server to start", interval=0.5)
        return self

    def __exit__(self, *exc):
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)
        self.log.close()

    def call(self, method: str, path: str, body: dict | None = None):
        """(status, JSON body) of a request; an HTTP error's status is returned too."""
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.base + path, method=method, data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def children(self) -> list[int]:
        return [pid for pid in _process_ids() if _parent_of(pid) == self.process.pid]

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        import os

        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_ids() -> list[int]:
    return [int(path.name) for path in Path("/proc").iterdir() if path.name.isdigit()]


def _parent_of(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[1])


def _try(call):
    try:
        return call()
    except OSError:
        return None


@pytest.mark.slow
def test_render_processes_end_with_a_killed_server(tmp_path, web_bundles_dir):
    with RealServer(tmp_path, web_bundles_dir, RENDER_PROCESSES="1",
                    RENDER_AUDIO="0") as server:
        status, body = server.call("POST", "/api/v1/generations",
                                   {"style": "rock", "seconds": 5, "seed": 1})
        assert status == 202, body
        job_id = body["job"]["id"]
        poll_until(lambda: server.call("GET", f"/api/v1/jobs/{job_id}")[1]["state"]
                   in ("done", "failed"), 120, "the job to end")
        assert server.call("GET", f"/api/v1/jobs/{job_id}")[1]["state"] == "done"
        import urllib.request

        with urllib.request.urlopen(f"{server.base}/api/v1/generations/{job_id}/pianoroll",
                                    timeout=60) as picture:  # drawn when first asked for
            assert picture.read().startswith(b"\x89PNG")
        renderers = server.children()
        assert renderers, "the piano roll was drawn in a render process"
    poll_until(lambda: not any(_parent_of(pid) is not None for pid in renderers), 10,
               "the render processes to end after their server was killed")


# The server's memory under the heaviest work the API takes, with every job
# cancelled at the end: it may grow by this much over what one piece needed.
LOAD_RSS_LIMIT_MIB = 600


@pytest.mark.slow
def test_memory_stays_bounded_under_load_and_cancelling_stops_the_work(
        tmp_path, web_bundles_dir):
    import threading

    from webapp.web.schema import MAX_LENGTH_SECONDS, MAX_VARIATIONS

    with RealServer(tmp_path, web_bundles_dir, RENDER_PROCESSES="0", RENDER_AUDIO="0",
                    RATE_LIMIT_PER_SECOND="0", MAX_JOBS_PER_CLIENT="100000") as server:
        status, body = server.call("POST", "/api/v1/generations",
                                   {"style": "piano", "seconds": 5, "seed": 1})
        poll_until(lambda: server.call("GET", f"/api/v1/jobs/{body['job']['id']}")[1][
            "state"] == "done", 120, "a first piece")
        baseline = server.rss_mib()
        heaviest = {"seconds": MAX_LENGTH_SECONDS, "variations": MAX_VARIATIONS,
                    "temperature": 2.0}
        answers, accepted, lock = [], [], threading.Lock()

        def client(number: int) -> None:
            for request in range(6):
                style = "piano" if (number + request) % 2 else "rock"
                status, body = server.call("POST", "/api/v1/generations",
                                           {"style": style, "seed": request, **heaviest})
                with lock:
                    answers.append(status)
                    if status == 202:
                        accepted.append(body["job"]["id"])

        clients = [threading.Thread(target=client, args=(n,)) for n in range(10)]
        for thread in clients:
            thread.start()
        peak = baseline
        while any(thread.is_alive() for thread in clients):  # RSS sampled every 0.2 s
            peak = max(peak, server.rss_mib())
            time.sleep(0.2)
        for _ in range(25):  # the queue works on the heaviest pieces for 5 s
            peak = max(peak, server.rss_mib())
            time.sleep(0.2)
        for job_id in accepted:
            assert server.call("DELETE", f"/api/v1/jobs/{job_id}")[0] in (202, 409)
        poll_until(lambda: all(server.call("GET", f"/api/v1/jobs/{job_id}")[1]["state"]
                               in ("cancelled", "done", "failed") for job_id in accepted),
                   30, "every job to stop")
        # Fixed times on purpose: what is measured is the CPU the server spends
        # in a 2 s window, 1 s after its jobs reported stopped (a poll for
        # "idle" would make the check true by construction).
        time.sleep(1.0)
        before = server.cpu_seconds()
        time.sleep(2.0)
        idle = server.cpu_seconds() - before
    print(f"\n{answers.count(202)} taken, {answers.count(503)} refused (queue full); RSS "
          f"{baseline:.0f} MiB before, {peak:.0f} MiB at peak; {idle:.2f} s of CPU in 2 s "
          "after the cancels")
    # Beyond the queue's bound, 503 with Retry-After; never another error.
    assert set(answers) <= {202, 503}, answers
    assert peak - baseline < LOAD_RSS_LIMIT_MIB, (baseline, peak)
    assert idle < 0.5, f"the server still worked {idle:.2f} s of CPU in 2 s after the cancels"
