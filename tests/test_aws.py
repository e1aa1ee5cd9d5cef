"""The AWS path end to end: the website with JOB_BACKEND=sqs and STORAGE=s3,
real worker processes (`python -m webapp.jobs.worker`), real boto3 over HTTP,
and moto's server on 127.0.0.1 standing in for AWS."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import mido
import pytest

from tests.conftest import poll_until, wait_for_job
from webapp.jobs.store import DONE, FAILED
from webapp.web.submit import submit_training

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
MAX_RECEIVES = 2
VISIBILITY = 4  # seconds: a dead worker's job shows again quickly

WORKER_CONFIG = """
from training.pipeline import Preset
TRAINING_PRESETS = {
    "quick": Preset("quick", "test: 1x16 LSTM, 300 steps", (16,), 300, 2, 32, 10, 1),
}
CHECKPOINT_SYNC_SECONDS = 0
SPOT_CHECK_SECONDS = 0.2
"""


# moto's server, real worker processes and training jobs: minutes in all
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch, request):
    """A fresh bucket and queues (each with its dead-letter queue)."""
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    suffix = request.node.name.replace("_", "-")[-40:].strip("-").lower()
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)
    bucket = f"perfrnn-{suffix}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    urls = {}
    for kind in ("generation", "training"):
        dlq = sqs.create_queue(QueueName=f"{suffix}-{kind}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        urls[kind] = sqs.create_queue(QueueName=f"{suffix}-{kind}", Attributes={
            "VisibilityTimeout": str(VISIBILITY),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(MAX_RECEIVES)})})["QueueUrl"]
        urls[f"{kind}-dlq"] = dlq
    settings = {"JOB_BACKEND": "sqs", "STORAGE": "s3", "S3_BUCKET": bucket,
                "SQS_GENERATION_QUEUE_URL": urls["generation"],
                "SQS_TRAINING_QUEUE_URL": urls["training"], "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": moto_endpoint}
    return {"s3": s3, "sqs": sqs, "bucket": bucket, "urls": urls, "settings": settings}


class Workers:
    """Worker processes, each in its own instance folder; all stopped at the end."""

    def __init__(self, aws, bundles: Path, folder: Path):
        self.aws, self.bundles, self.folder = aws, bundles, folder
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        instance = self.folder / f"worker{len(self.processes) + 1}"
        instance.mkdir()
        (instance / "config.py").write_text(WORKER_CONFIG)
        environment = dict(os.environ, PERFRNN_INSTANCE=str(instance),
                           BUNDLES_DIR=str(env.pop("BUNDLES_DIR", self.bundles)),
                           SPOT_NOTICE_URL=env.pop("SPOT_NOTICE_URL", "http://127.0.0.1:9/"),
                           **self.aws["settings"], **env)
        log_path = instance / "worker.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp.jobs.worker", "--wait", "1", *args], cwd=ROOT,
            env=environment, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
        self.processes.append((process, log_path))
        return process

    def log(self, process) -> str:
        return next(path for p, path in self.processes if p is process).read_text()

    def wait(self, process, timeout: float = 120) -> None:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"worker did not stop:\n{self.log(process)[-3000:]}")

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(aws, web_bundles_dir, tmp_path):
    pool = Workers(aws, web_bundles_dir, tmp_path)
    yield pool
    pool.stop_all()


def status(aws, job_id: str) -> dict | None:
    try:
        body = aws["s3"].get_object(Bucket=aws["bucket"], Key=f"status/{job_id}.json")["Body"]
    except aws["s3"].exceptions.NoSuchKey:
        return None
    return json.loads(body.read())


def queue_counts(aws, url: str) -> int:
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_generation_goes_through_sqs_to_a_worker_and_comes_back_as_a_presigned_download(
        aws, workers, make_app):
    app = make_app(**aws["settings"])
    client = app.test_client()
    job_ids = []
    for seed in (9, 10, 11):  # waiting together: the worker samples them as one batch
        answer = client.post("/api/v1/generations", json={"style": "rock", "seconds": 5,
                                                          "seed": seed, "type": "30"})
        assert answer.status_code == 202, answer.get_json()
        job_ids.append(answer.get_json()["job"]["id"])
    assert queue_counts(aws, aws["urls"]["generation"]) == 3
    worker = workers.start("--max-jobs", "3", "--idle-exit", "60")
    for other in job_ids:
        job = wait_for_job(app, other, timeout=120)
        assert job.state == DONE, (job.error, workers.log(worker))
    workers.wait(worker)
    assert "3 generations of rock sampled together" in workers.log(worker)
    job_id = job_ids[0]

    download = client.get(f"/api/v1/generations/{job_id}/midi")
    assert download.status_code == 302
    url = download.headers["Location"]
    assert url.startswith(aws["settings"]["AWS_ENDPOINT_URL"]) and "Signature" in url
    with urllib.request.urlopen(url) as response:
        disposition = response.headers["Content-Disposition"]
        data = response.read()
    assert disposition == 'attachment; filename="rock-5s-seed9.mid"'
    midi = mido.MidiFile(file=__import__("io").BytesIO(data))
    assert abs(midi.length - 5.0) < 1.0
    assert 30 in {m.program for t in midi.tracks for m in t if m.type == "program_change"}
    assert queue_counts(aws, aws["urls"]["generation"]) == 0


def test_an_edit_goes_through_sqs_to_a_worker_that_reads_its_source_from_s3(
        aws, workers, make_app):
    """A remote worker knows only its own jobs: an edit carries its source's
    files (keys and digests), and runs alone, not batched with a generation."""
    app = make_app(**aws["settings"])
    client = app.test_client()
    answer = client.post("/api/v1/generations", json={"style": "rock", "seconds": 8,
                                                      "seed": 3, "bpm": 120})
    first = answer.get_json()["job"]["id"]
    worker = workers.start("--max-jobs", "1", "--idle-exit", "60")
    assert wait_for_job(app, first, timeout=120).state == DONE, workers.log(worker)
    workers.wait(worker)
    edit = client.post(f"/api/v1/generations/{first}/edits",
                       json={"kind": "regenerate", "first_bar": 2, "last_bar": 3, "seed": 4})
    assert edit.status_code == 202, edit.get_json()
    other = client.post("/api/v1/generations", json={"style": "rock", "seconds": 5, "seed": 8})
    edited, plain = edit.get_json()["job"]["id"], other.get_json()["job"]["id"]
    worker = workers.start("--max-jobs", "2", "--idle-exit", "60")
    for job_id in (edited, plain):
        job = wait_for_job(app, job_id, timeout=180)
        assert job.state == DONE, (job.error, workers.log(worker))
    workers.wait(worker)
    assert "sampled together" not in workers.log(worker)
    result = client.get(f"/api/v1/jobs/{edited}").get_json()
    assert result["version"] == 2 and result["result"]["window"] == [2.0, 6.0]
    assert client.get(result["downloads"][0]["midi"]).status_code == 302


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(aws, workers, make_app):
    app = make_app(**aws["settings"])
    client = app.test_client()
    answer = client.post("/api/v1/generations", json={"style": "rock", "seconds": 600,
                                                      "seed": 4})
    job_id = answer.get_json()["job"]["id"]
    first = workers.start("--idle-exit", "60")
    poll_until(lambda: (status(aws, job_id) or {}).get("state") == "running", 90,
               "the first worker to start the job")
    first.send_signal(signal.SIGKILL)  # the machine vanishes: no clean-up at all
    first.wait(timeout=10)
    assert status(aws, job_id)["state"] == "running"

    second = workers.start("--max-jobs", "1", "--idle-exit", "60")
    job = wait_for_job(app, job_id, timeout=240)
    assert job.state == DONE, (job.error, workers.log(second))
    workers.wait(second)
    assert "receive 2 of" in workers.log(second)  # the same message, delivered again
    keys = sorted(entry["Key"] for entry in aws["s3"].list_objects_v2(
        Bucket=aws["bucket"], Prefix=f"jobs/{job_id}/").get("Contents", []))
    assert keys == sorted(f"jobs/{job_id}/rock-600s-seed4.{ext}"
                          for ext in ("mid", "notes.json", "sequence.pb", "events.npy"))
    assert len(job.result["variations"]) == 1
    assert queue_counts(aws, aws["urls"]["generation"]) == 0
    assert queue_counts(aws, aws["urls"]["generation-dlq"]) == 0


def test_a_job_whose_last_try_is_killed_ends_failed_not_running_for_ever(
        aws, workers, make_app):
    app = make_app(**aws["settings"])
    answer = app.test_client().post("/api/v1/generations",
                                    json={"style": "rock", "seconds": 600, "seed": 5})
    job_id = answer.get_json()["job"]["id"]
    for attempt in range(1, MAX_RECEIVES + 1):  # every try's worker is killed mid-job
        worker = workers.start("--idle-exit", "60")
        poll_until(lambda attempt=attempt: (status(aws, job_id) or {}).get("attempt") == attempt
                   and status(aws, job_id)["state"] == "running", 90,
                   f"worker {attempt} to start the job")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert status(aws, job_id)["attempts"] == MAX_RECEIVES
    # as if the last worker died while writing its files
    aws["s3"].put_object(Bucket=aws["bucket"], Key=f"jobs/{job_id}/rock-600s-seed5.mid",
                         Body=b"MThd, cut short")
    # No worker will take it again (its message goes to the dead-letter queue):
    # once its status has gone unrenewed for three leases, the job has failed.
    job = poll_until(lambda: (lambda j: j if j.finished else None)(
        app.extensions["perfrnn"].store.get(job_id)), 60, "the job to end")
    assert job.state == "failed"
    assert f"stopped on its last try (attempt {MAX_RECEIVES} of {MAX_RECEIVES})" in job.error
    assert status(aws, job_id)["state"] == "failed"
    assert not aws["s3"].list_objects_v2(Bucket=aws["bucket"],
                                         Prefix=f"jobs/{job_id}/").get("Contents")


def test_poison_messages_end_in_the_dead_letter_queue_and_the_job_shows_why(
        aws, workers, make_app, web_bundles_dir, tmp_path):
    # The web server knows a style "ghost" that the workers do not have.
    web_bundles = tmp_path / "web-bundles"
    web_bundles.mkdir()
    for name in ("piano", "rock"):
        (web_bundles / f"{name}.mag").write_bytes((web_bundles_dir / f"{name}.mag").read_bytes())
    (web_bundles / "ghost.mag").write_bytes((web_bundles_dir / "piano.mag").read_bytes())
    app = make_app(BUNDLES_DIR=str(web_bundles), **aws["settings"])
    client = app.test_client()
    aws["sqs"].send_message(QueueUrl=aws["urls"]["generation"], MessageBody="{not json")
    ghost = client.post("/api/v1/generations", json={"style": "ghost", "seconds": 5})
    ghost_id = ghost.get_json()["job"]["id"]
    good = client.post("/api/v1/generations", json={"style": "piano", "seconds": 5})
    good_id = good.get_json()["job"]["id"]

    worker = workers.start("--idle-exit", "12")
    assert wait_for_job(app, good_id, timeout=120).state == DONE  # not blocked
    failed = wait_for_job(app, ghost_id, timeout=120)
    assert failed.state == FAILED and "there is no style 'ghost'" in failed.error
    workers.wait(worker, timeout=180)
    poll_until(lambda: queue_counts(aws, aws["urls"]["generation-dlq"]) == 2, 30,
               "both bad messages in the dead-letter queue")
    assert queue_counts(aws, aws["urls"]["generation"]) == 0
    log = workers.log(worker)
    assert "unreadable message" in log and "failed for good" in log


class SpotNotices(http.server.ThreadingHTTPServer):
    """The instance-metadata answer for spot/instance-action: 404 until `notice` is set."""

    def __init__(self):
        self.notice = threading.Event()
        notices = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if notices.notice.is_set():
                    body = b'{"action": "terminate", "time": "2026-11-23T08:00:00Z"}'
                    self.send_response(200)
                else:
                    body = b"not found"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def make_training_files(folder: Path):
    from werkzeug.datastructures import FileStorage

    uploads = []
    for number, root in enumerate((60, 64, 57)):
        midi = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        midi.tracks.append(track)
        for step in range(32):
            pitch = root + (0, 2, 4, 7)[step % 4]
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
        path = folder / f"tune{number}.mid"
        midi.save(path)
        uploads.append(FileStorage(stream=path.open("rb"), filename=path.name))
    return uploads


def test_training_interrupted_by_a_spot_notice_resumes_from_its_s3_checkpoint(
        aws, workers, make_app, tmp_path):
    notices = SpotNotices()
    threading.Thread(target=notices.serve_forever, daemon=True).start()
    try:
        app = make_app(**aws["settings"])
        services, queue = app.extensions["perfrnn"], app.extensions["perfrnn_queue"]
        job = submit_training(services, queue, {"name": "spotty", "preset": "quick",
                                                "kind": None, "start": "scratch"},
                              make_training_files(tmp_path), "a")
        first = workers.start("--idle-exit", "60", SPOT_NOTICE_URL=(
            f"http://127.0.0.1:{notices.server_address[1]}/spot/instance-action"))
        listed = lambda: aws["s3"].list_objects_v2(  # noqa: E731
            Bucket=aws["bucket"], Prefix="checkpoints/spotty/").get("Contents", [])
        poll_until(lambda: any(o["Key"].endswith("/checkpoint") for o in listed()), 180,
                   "a checkpoint in S3")
        notices.notice.set()
        workers.wait(first, timeout=120)
        interrupted = status(aws, job.id)
        assert interrupted["state"] == "queued" and "spot" in interrupted["error"]
        assert "stopping after this checkpoint" in workers.log(first)

        second = workers.start("--max-jobs", "1", "--idle-exit", "60")
        done = wait_for_job(app, job.id, timeout=300)
        assert done.state == DONE, (done.error, workers.log(second))
        workers.wait(second)
        assert "resuming from step" in workers.log(second)
        assert done.result["style"] == "spotty" and done.result["steps"] == 300
        assert listed() == []  # the finished run's checkpoints are cleared
        assert aws["s3"].head_object(Bucket=aws["bucket"], Key="styles/spotty.mag")
        styles = app.test_client().get("/api/v1/styles").get_json()["styles"]
        assert "spotty" in [style["name"] for style in styles]
    finally:
        notices.shutdown()
