"""Training steps a user runs: `python -m training prepare` and `python -m training train`.

The library entry points (`prepare_corpus`, `read_prepared`, `read_manifest`,
`train_model`) are loaded on first use, so `python -m training --help` starts
without note-seq or TensorFlow.
"""

from __future__ import annotations

import importlib

_ENTRY_POINTS = {
    "PrepareResult": "training.prepared",
    "prepare_corpus": "training.prepare",
    "read_manifest": "training.prepare",
    "read_prepared": "training.prepare",
    "TrainResult": "training.train",
    "train_model": "training.train",
}

__all__ = sorted(_ENTRY_POINTS)


def __getattr__(name: str):
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
