"""Shared fixtures: Magenta's reference bundles and small bundles of our own."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")

FIXTURES = Path(__file__).parent / "fixtures"
MAGENTA_IDS = ("performance_with_dynamics", "multiconditioned_performance_with_dynamics")


def magenta_bundle_path(generator_id: str) -> Path:
    """Path of a reference bundle made by Magenta 2.1.4 itself (2 x 64 LSTM)."""
    return FIXTURES / f"{generator_id}_tiny.mag"


def magenta_reference_path(generator_id: str) -> Path:
    """Magenta's own inputs and softmax for 300 events of a real performance."""
    return FIXTURES / f"{generator_id}_tiny_reference.npz"


@pytest.fixture(scope="session")
def piano_bundle_path() -> Path:
    """Magenta's unconditioned reference bundle."""
    return magenta_bundle_path("performance_with_dynamics")


@pytest.fixture(scope="session")
def conditioned_bundle_path() -> Path:
    """Magenta's density- and key-conditioned reference bundle."""
    return magenta_bundle_path("multiconditioned_performance_with_dynamics")


@pytest.fixture(scope="session")
def piano_bundle(piano_bundle_path):
    from perfrnn.bundle import read_bundle

    return read_bundle(piano_bundle_path)


@pytest.fixture(scope="session")
def conditioned_bundle(conditioned_bundle_path):
    from perfrnn.bundle import read_bundle

    return read_bundle(conditioned_bundle_path)


@pytest.fixture(scope="session")
def piano_sampler(piano_bundle):
    from perfrnn.sampler import Sampler

    return Sampler(piano_bundle)


@pytest.fixture(scope="session")
def conditioned_sampler(conditioned_bundle):
    from perfrnn.sampler import Sampler

    return Sampler(conditioned_bundle)


# ----- the website ---------------------------------------------------------------

ROCK_TYPES = [{"name": "Overdriven Guitar", "program": 29, "track": "harmony"},
              {"name": "Distortion Guitar", "program": 30, "track": "harmony"}]


def small_band_bundle(seed: int = 5, metadata=None,
                      config_id: str = "multitrack_performance_with_dynamics"):
    """A 2x32 band style whose notes come quickly in every part: by default the
    website tests' "rock", with two guitar types; `metadata` sets its parts
    (the configuration takes its tracks) and card; `config_id` its encoding
    (e.g. "metric_band")."""
    import numpy as np

    from perfrnn.bundle import Bundle, BundleMetadata
    from perfrnn.configs import BAND_TRACKS, get_config
    from perfrnn.encodings import encoding_for
    from perfrnn.model import PerformanceRNN

    if metadata is None:
        metadata = BundleMetadata(style="rock", description="a small test band",
                                  tracks=BAND_TRACKS, default_bpm=120.0, types=ROCK_TYPES,
                                  provenance=[{"source": "random weights", "licence": "CC0"}],
                                  card="# rock (test)\nRandom weights.")
    config = get_config(config_id).replace(rnn_layer_sizes=(32, 32), tracks=metadata.tracks)
    encoding = encoding_for(config)
    model = PerformanceRNN(encoding.input_size, encoding.num_classes, (32, 32), seed=seed)
    # Favour note-ons and short shifts so that every part plays in a few seconds.
    bias = np.zeros(encoding.num_classes, np.float32)
    for role in range(len(metadata.tracks)):
        bias[encoding.note_on(role, 36):encoding.note_on(role, 80)] = 2.0
    bias[encoding.time_shift(5):encoding.time_shift(30)] = 4.0
    model.output_biases.assign(bias)
    return Bundle(config=config, model=model, metadata=metadata)


@pytest.fixture(scope="session")
def web_bundles_dir(tmp_path_factory) -> Path:
    """Small styles for website tests: "piano" (Magenta's conditioned 2x64
    reference bundle) and "rock" (a 2x32 band with two guitar types)."""
    import shutil

    from perfrnn.bundle import write_bundle

    folder = tmp_path_factory.mktemp("bundles")
    shutil.copy(magenta_bundle_path("multiconditioned_performance_with_dynamics"),
                folder / "piano.mag")
    write_bundle(small_band_bundle(), folder / "rock.mag")
    # the shipped classifier and references: the small styles are scored as piano and rock
    shutil.copy(Path(__file__).resolve().parent.parent / "bundles" / "scoring.json",
                folder / "scoring.json")
    return folder


GENEROUS_LIMITS = {"RATE_LIMIT_PER_SECOND": 10_000, "RATE_LIMIT_BURST": 10_000,
                   "MAX_JOBS_PER_CLIENT": 10_000}
"""Per-client limits out of the way of tests that are not about them (every
test client is 127.0.0.1); tests/test_security.py sets its own."""


@pytest.fixture
def make_app(tmp_path, web_bundles_dir):
    """Builds the website on a fresh instance folder with the small styles:
    `make_app(**settings)`; worker threads stop when the test ends."""
    from webapp import create_app

    apps = []

    def make(**settings):
        config = {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
                  "BUNDLES_DIR": str(web_bundles_dir), "PRELOAD_STYLES": False,
                  **GENEROUS_LIMITS, **settings}
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    from webapp.services import shutdown

    for app in apps:
        shutdown(app)


def poll_until(condition, timeout: float, what: str, interval: float = 0.2,
               on_timeout=None):
    """condition()'s first true value, asked every `interval` seconds; fails
    the test after `timeout` seconds. `on_timeout()`, if given, is called
    then (to save a screenshot, stop a process...) and what it returns is
    added to the failure's message."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    detail = on_timeout() if on_timeout is not None else None
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}"
                + (f"; {detail}" if detail else ""))


def wait_for_job(app, job_id: str, timeout: float = 60.0):
    """Polls the job store until the job finishes (or fails the test)."""
    store = app.extensions["perfrnn"].store

    def finished():
        job = store.get(job_id)
        return job if job is not None and job.finished else None

    return poll_until(finished, timeout, f"job {job_id} to finish", interval=0.1)
