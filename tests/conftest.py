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
