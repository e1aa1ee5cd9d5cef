"""The website's core without HTTP: settings, job records, storage, the
worker pool, the style registry and what a worker does with a job."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time

import mido
import pytest

from perfrnn.errors import PerfRNNError
from perfrnn.registry import StyleRegistry, StyleSource, check_style_name
from tests.conftest import poll_until, wait_for_job
from webapp.config import from_environment
from webapp.jobs.expiry import remove_expired
from webapp.jobs.queues import LocalQueue, QueueFull
from webapp.jobs.store import CANCELLED, DONE, EXPIRED, FAILED, QUEUED, RUNNING, Job, JobStore
from webapp.storage.local import LocalStorage
from webapp.web.submit import submit_generation
from webapp.web.validation import ValidationError, generation_params


def test_settings_from_environment_are_typed_and_bad_ones_are_named():
    found = from_environment({"GENERATION_WORKERS": "3", "PRELOAD_STYLES": "off",
                              "TRAINING_TOKEN": "s3cret", "UNRELATED": "x"})
    assert found == {"GENERATION_WORKERS": 3, "PRELOAD_STYLES": False,
                     "TRAINING_TOKEN": "s3cret"}
    with pytest.raises(ValueError, match="QUEUE_LIMIT"):
        from_environment({"QUEUE_LIMIT": "many"})
    with pytest.raises(ValueError, match="RENDER_AUDIO"):
        from_environment({"RENDER_AUDIO": "maybe"})


def test_job_records_move_through_their_states(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job = store.create("generation", {"style": "rock"}, owner="a")
    assert (job.state, job.progress, job.params) == (QUEUED, 0.0, {"style": "rock"})
    assert store.start(job.id) and not store.start(job.id)
    store.progress(job.id, 0.5, "generating", {"step": 3})
    running = store.get(job.id)
    assert (running.state, running.progress, running.stage, running.detail) == \
        (RUNNING, 0.5, "generating", {"step": 3})
    store.finish(job.id, {"seed": 7})
    done = store.get(job.id)
    assert (done.state, done.progress, done.result) == (DONE, 1.0, {"seed": 7})
    store.fail(job.id, "too late")  # a finished job keeps its outcome
    assert store.get(job.id).state == DONE
    assert [j.id for j in store.recent("a")] == [job.id] and store.recent("b") == []
    assert store.get("nope") is None
    with pytest.raises(ValueError):
        store.create("mining", {})


def test_cancel_stops_a_queued_job_at_once_and_asks_a_running_one(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    waiting = store.create("generation", {})
    store.request_cancel(waiting.id)
    assert store.get(waiting.id).state == CANCELLED and not store.start(waiting.id)
    running = store.create("generation", {})
    store.start(running.id)
    assert not store.cancel_requested(running.id)
    assert store.request_cancel(running.id).state == RUNNING
    assert store.cancel_requested(running.id)


def test_a_restart_fails_running_jobs_with_a_reason_and_requeues_waiting_ones(
        make_app, tmp_path):
    app = make_app(GENERATION_WORKERS=1)
    store = app.extensions["perfrnn"].store
    params = generation_params({"style": "rock", "seconds": 5, "seed": 3},
                               app.extensions["perfrnn"].registry)
    # What a server that died leaves behind: one job running, one waiting.
    running = store.create("generation", params)
    store.start(running.id)
    waiting = store.create("generation", params)
    app.extensions["perfrnn_queue"].stop()

    restarted = make_app(GENERATION_WORKERS=1)
    failed = restarted.extensions["perfrnn"].store.get(running.id)
    assert failed.state == FAILED and "server stopped" in failed.error
    assert wait_for_job(restarted, waiting.id).state == DONE


def test_the_queue_refuses_work_beyond_its_limit():
    started, finish = [], threading.Event()
    # a job that runs until the test lets it finish, so "b" waits behind it for sure
    queue = LocalQueue(lambda job_ids, more: (started.extend(job_ids), finish.wait(30)),
                       {"generation": 1}, limit=1)

    def job(job_id):
        return Job(id=job_id, kind="generation", state=QUEUED, owner=None,
                   params={"style": "piano"})

    try:
        queue.submit(job("a"))
        poll_until(lambda: started, 5, "the first job to start", interval=0.01)
        queue.submit(job("b"))  # waits while "a" runs
        with pytest.raises(QueueFull) as full:
            queue.submit(job("c"))
        assert full.value.retry_after > 0
    finally:
        finish.set()
        queue.stop()


def test_local_storage_is_confined_to_its_folder(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    storage.put("jobs/a/x.mid", b"data")
    assert storage.get("jobs/a/x.mid") == b"data" and storage.exists("jobs/a/x.mid")
    assert not list((tmp_path / "files" / "jobs" / "a").glob(".part-*"))
    for key in ("../outside", "jobs/../../outside", "/etc/passwd"):
        with pytest.raises(PerfRNNError, match="invalid storage key"):
            storage.put(key, b"x")
    storage.delete_prefix("jobs/a")
    assert not storage.exists("jobs/a/x.mid")
    with pytest.raises(PerfRNNError, match="no longer stored"):
        storage.get("jobs/a/x.mid")


def test_registry_names_shipped_first_and_reports_bundles_that_do_not_load(
        tmp_path, web_bundles_dir):
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(web_bundles_dir / "piano.mag", user / "piano.mag")  # shadowed: shipped wins
    shutil.copy(web_bundles_dir / "piano.mag", user / "mine.mag")
    (user / "broken.mag").write_bytes(b"not a bundle")
    (user / "Bad Name.mag").write_bytes(b"ignored")
    registry = StyleRegistry([StyleSource(web_bundles_dir, "shipped"), StyleSource(user, "user")])
    styles = {style.name: style for style in registry.styles()}
    assert set(styles) == {"piano", "rock", "mine", "broken"}
    assert styles["piano"].origin == "shipped" and styles["mine"].origin == "user"
    assert styles["broken"].bundle is None and styles["broken"].error
    with pytest.raises(PerfRNNError, match="cannot be loaded"):
        registry.get("broken")
    with pytest.raises(PerfRNNError, match="there is no style 'jazz'"):
        registry.get("jazz")
    first = registry.sampler("mine")
    assert registry.sampler("mine") is first
    for bad in ("", "Rock", "a b", "../x", "x" * 41):
        with pytest.raises(PerfRNNError):
            check_style_name(bad)


def test_a_style_that_breaks_fails_its_job_with_the_reason_and_the_worker_goes_on(
        make_app, tmp_path, web_bundles_dir):
    bundles = tmp_path / "bundles"
    shutil.copytree(web_bundles_dir, bundles)
    app = make_app(BUNDLES_DIR=str(bundles), GENERATION_WORKERS=1)
    services, queue = app.extensions["perfrnn"], app.extensions["perfrnn_queue"]
    params = generation_params({"style": "rock", "seconds": 5}, services.registry)
    (bundles / "rock.mag").write_bytes(b"corrupted on disk")
    broken = wait_for_job(app, submit_generation(services, queue, params, "a").id)
    assert broken.state == FAILED and "cannot be loaded" in broken.error
    assert "Traceback" not in broken.error
    good = generation_params({"style": "piano", "seconds": 5, "seed": 1}, services.registry)
    assert wait_for_job(app, submit_generation(services, queue, good, "a").id).state == DONE


def test_generation_job_writes_midi_and_notes_and_no_audio(make_app):
    app = make_app()
    services, queue = app.extensions["perfrnn"], app.extensions["perfrnn_queue"]
    params = generation_params({"style": "rock", "length": "6", "unit": "seconds",
                                "type": "Distortion Guitar", "variations": 2, "seed": 42,
                                "bpm": 100}, services.registry)
    job = wait_for_job(app, submit_generation(services, queue, params, "a").id)
    assert job.state == DONE, job.error
    assert job.result["seed"] == 42 and len(job.result["variations"]) == 2
    for variation in job.result["variations"]:
        path = services.storage.path(variation["midi"])
        midi = mido.MidiFile(path)
        programs = {m.program for track in midi.tracks for m in track if m.type == "program_change"}
        assert 30 in programs
        assert abs(midi.length - 6.0) < 1.0
        notes = json.loads(services.storage.get(variation["notes"]))
        assert {part["program"] for part in notes["parts"]} == programs
        # audio and the piano roll are made when first downloaded (tests/test_downloads.py)
        assert "pianoroll" not in variation and "wav" not in variation
    assert job.result["variations"][0]["midi_name"] == "rock-6s-seed42-v1.mid"


def test_validation_names_each_bad_field(make_app):
    registry = make_app().extensions["perfrnn"].registry
    with pytest.raises(ValidationError) as bad:
        generation_params({"style": "rock", "length": "11", "unit": "minutes",
                           "temperature": "0", "variations": "5", "seed": "-1", "bpm": "5",
                           "key": "Am", "type": "Banjo"}, registry)
    assert set(bad.value.errors) == {"length", "temperature", "variations", "seed", "bpm",
                                     "key", "type"}
    with pytest.raises(ValidationError) as bad:
        generation_params({"style": "piano", "key": "H#", "density": "100"}, registry)
    assert set(bad.value.errors) == {"key", "density"}
    params = generation_params({"style": "piano", "length": "1.5", "unit": "minutes",
                                "key": "F#m", "density": "4"}, registry)
    assert params["seconds"] == 90 and params["key"] == "F#m" and params["density"] == 4
    assert 0 <= params["seed"] < 2**31


def test_chords_form_and_key_become_generation_options(make_app):
    from webapp.jobs.runner import generation_options

    registry = make_app().extensions["perfrnn"].registry
    params = generation_params({"style": "piano", "bars": "8", "chords": "C | % | F | G",
                                "form": " Loop", "key": "Em"}, registry)
    assert (params["chords"], params["form"], params["key"]) == (["C", "C", "F", "G"],
                                                                 "loop", "Em")
    options, _ = generation_options(params)
    assert (options.chords, options.form, options.key) == (("C", "C", "F", "G"), "loop", None)
    assert options.pitch_histogram is not None  # the piano's key is its key control
    options.validate()
    # A band that follows chords without a key control: its key is its progressions'.
    options, _ = generation_options({**params, "key": None, "song_key": "Em"})
    assert options.key == "Em" and options.pitch_histogram is None
    # A job queued before songs: none of them.
    options, _ = generation_options({"temperature": 1.0, "seconds": 5})
    assert (options.chords, options.form, options.key) == (None, None, None)


def test_old_results_expire_and_their_files_go(make_app):
    app = make_app()
    services, queue = app.extensions["perfrnn"], app.extensions["perfrnn_queue"]
    params = generation_params({"style": "piano", "seconds": 5}, services.registry)
    job = wait_for_job(app, submit_generation(services, queue, params, "a").id)
    key = job.result["variations"][0]["midi"]
    assert remove_expired(services, retention_hours=1) == 0 and services.storage.exists(key)
    with sqlite3.connect(services.store.path) as db:
        db.execute("UPDATE jobs SET created_at = created_at - 7200 WHERE id = ?", (job.id,))
    assert remove_expired(services, retention_hours=1) == 1
    assert services.store.get(job.id).state == EXPIRED and not services.storage.exists(key)
    assert services.store.recent("a") == []


def test_a_training_run_nobody_resumes_is_removed_after_the_retention_time(make_app):
    import os

    from webapp.jobs.expiry import remove_idle_training_runs

    app = make_app()
    services = app.extensions["perfrnn"]
    hours_ago = time.time() - 2 * 3600
    for name in ("cancelled", "waiting", "recent"):
        checkpoint = services.training_dir / name / "run" / "ckpt-100.index"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"checkpoint")
        if name != "recent":
            os.utime(checkpoint, (hours_ago, hours_ago))
    # "waiting" is the style of a training that waits to run: it resumes from there
    services.store.create("training", {"name": "waiting", "uploads": []}, "a")

    assert remove_idle_training_runs(services, retention_hours=1) == ["cancelled"]
    assert sorted(path.name for path in services.training_dir.iterdir()) == [
        "recent", "waiting"]


def test_threads_share_a_style_sampler_and_get_the_same_music_as_one_at_a_time(make_app):
    import threading

    import numpy as np

    from perfrnn.options import GenerationOptions

    sampler = make_app().extensions["perfrnn"].registry.sampler("rock")
    seeds = range(6)
    alone = {seed: sampler.generate(GenerationOptions(seconds=4, seed=seed)).events[0]
             for seed in seeds}
    together: dict[int, np.ndarray] = {}

    def generate(some):
        for seed in some:
            together[seed] = sampler.generate(GenerationOptions(seconds=4, seed=seed)).events[0]

    threads = [threading.Thread(target=generate, args=(list(seeds)[start::3],))
               for start in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(together) == set(seeds)
    for seed in seeds:
        assert np.array_equal(together[seed], alone[seed]), seed


def test_generations_that_wait_together_are_sampled_together_each_with_its_own_music(
        make_app, caplog):
    import logging

    from perfrnn.generate import generate_midi
    from webapp.jobs.runner import generation_options

    app = make_app(GENERATION_WORKERS=1, GENERATION_BATCH=8, RENDER_PROCESSES=1)
    services, queue = app.extensions["perfrnn"], app.extensions["perfrnn_queue"]
    # A long piano piece holds the only worker while four rock pieces wait.
    long = submit_generation(services, queue, generation_params(
        {"style": "piano", "seconds": 600, "seed": 1}, services.registry), "a")
    poll_until(lambda: services.store.get(long.id).state == RUNNING, 30, "the long job")
    asked = [generation_params({"style": "rock", "seconds": seconds, "seed": seed,
                                "temperature": temperature, "variations": variations},
                               services.registry)
             for seconds, seed, temperature, variations in
             [(6, 1, 1.0, 1), (5, 2, 0.8, 2), (8, 1, 1.2, 1), (5, 9, 1.0, 3)]]
    with caplog.at_level(logging.INFO, logger="webapp.jobs.runner"):
        jobs = [submit_generation(services, queue, params, "a") for params in asked]
        services.store.request_cancel(long.id)
        finished = [wait_for_job(app, job.id) for job in jobs]
    assert wait_for_job(app, long.id).state == CANCELLED
    assert "4 generations of rock sampled together" in caplog.text
    sampler = services.registry.sampler("rock")
    for job, params in zip(finished, asked):
        assert job.state == DONE, job.error
        alone = generate_midi(sampler, *generation_options(params), style="rock")
        stored = [services.storage.get(variation["midi"])
                  for variation in job.result["variations"]]
        assert stored == [data for _, data in alone.files]
        for variation in job.result["variations"]:  # each with its own notes
            notes = json.loads(services.storage.get(variation["notes"]))
            assert (notes["job"], notes["variation"]) == (job.id, variation["index"])


def test_training_errors_name_files_in_the_websites_words(tmp_path):
    from perfrnn.errors import PATH, Fix
    from webapp.jobs.runner import _for_users

    work = tmp_path / "training" / "mine"
    inputs = work / "inputs"
    assert _for_users(PerfRNNError(f"no music files found in {PATH}", path=inputs),
                      work, inputs) == "no music files found in the uploaded files"
    unreadable = PerfRNNError("it is not a valid mid file", path=inputs / "a b.mid",
                              action="read")
    assert _for_users(unreadable, work, inputs) == "cannot read a b.mid: it is not a valid mid file"
    nan = PerfRNNError(f"training loss became nan at step 3; the last good checkpoint is {PATH}",
                       path=work / "run" / "checkpoints" / "ckpt-2")
    assert _for_users(nan, work, inputs) == ("training loss became nan at step 3; the last good "
                                             "checkpoint is the style's training folder")
    kind = PerfRNNError("all hold only drums", fix=Fix("kind", "drums", "for a drum style"))
    assert _for_users(kind, work, inputs) == ('all hold only drums; for a drum style, choose the '
                                              'kind "drums" ("Drums only" on the train page)')
    # A server folder written into a problem's text is never shown.
    leaked = _for_users(PerfRNNError(f"odd files in {work / 'run'}"), work, inputs)
    assert str(tmp_path) not in leaked and "server log" in leaked
