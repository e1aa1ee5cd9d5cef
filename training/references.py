"""A style's norms, measured on its prepared corpus (`perfrnn.scoring`).

`training.export` records them in each bundle it writes;
`training.classify.build_scoring` (`python -m training references`) writes
them, with the style classifier, to the `scoring.json` beside the shipped
bundles.
"""

from __future__ import annotations

from pathlib import Path

from perfrnn.configs import get_config
from perfrnn.scoring import EXCERPT_SECONDS, StyleReferences, excerpts, style_references

MAX_REFERENCE_EXCERPTS = 2000  # enough for a 99th percentile; bounds the export's time


def corpus_references(pieces: list, metric: bool) -> StyleReferences:
    """A style's norms from its prepared pieces, cut into EXCERPT_SECONDS excerpts.

    Raises:
      PerfRNNError: the pieces have no notes.
    """
    return style_references(excerpts(pieces, EXCERPT_SECONDS, MAX_REFERENCE_EXCERPTS), metric)


def corpus_is_metric(data_dir: Path) -> bool:
    """Whether a prepared corpus was made for a metric configuration."""
    from training.prepare import read_manifest

    return get_config(read_manifest(data_dir)["config"]).is_metric
