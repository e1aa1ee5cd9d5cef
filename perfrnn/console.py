"""Helpers for command-line programs: keep library start-up chatter off the terminal."""

from __future__ import annotations

import os
import sys
import warnings


def import_libraries_quietly() -> None:
    """Imports TensorFlow and note-seq with their start-up messages silenced.

    TensorFlow's C++ logging writes to file descriptor 2 before any Python
    setting applies, so stderr is pointed at /dev/null while they import.
    An import that fails still raises, and is reported once stderr is back.
    Call it at the start of a command, before anything imports TensorFlow.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import note_seq  # noqa: F401
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
