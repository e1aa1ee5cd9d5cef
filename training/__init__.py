"""Training steps a user runs: `python -m training prepare` (more steps to come).

The library entry points are importable without TensorFlow; it is imported
only when TFRecords are written or read.
"""

from training.prepare import PrepareResult, prepare_corpus, read_manifest, read_prepared

__all__ = ["PrepareResult", "prepare_corpus", "read_manifest", "read_prepared"]
