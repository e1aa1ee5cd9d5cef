"""Scoring references: each style's norms and the style classifier
(`python -m training references`).

Writes the `scoring.json` that sits beside the shipped bundles
(`perfrnn.scoring`): the content-only style classifier, trained as the genre
fidelity one is (held-out real excerpts of every style, and reference music
no model trained on), and per style what its own real music does, measured
on excerpts of its whole prepared corpus. A style exported later records
its own norms in its bundle instead (`training.export`); the classifier
knows only the styles it was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perfrnn.configs import get_config
from perfrnn.errors import PerfRNNError
from perfrnn.scoring import EXCERPT_SECONDS, StyleReferences, style_references, write_scoring_file

MAX_REFERENCE_EXCERPTS = 2000  # enough for a 99th percentile; bounds the export's time


def corpus_references(pieces: list, metric: bool) -> StyleReferences:
    """A style's norms from its prepared pieces, cut into EXCERPT_SECONDS excerpts.

    Raises:
      PerfRNNError: the pieces have no notes.
    """
    from training.evaluate import excerpts

    return style_references(excerpts(pieces, EXCERPT_SECONDS, MAX_REFERENCE_EXCERPTS), metric)


def corpus_is_metric(data_dir: Path) -> bool:
    """Whether a prepared corpus was made for a metric configuration."""
    from training.prepare import read_manifest

    return get_config(read_manifest(data_dir)["config"]).is_metric


def build_scoring(corpora: dict[str, Path], references: dict[str, list[Path]], out: Path,
                  progress: Callable[[str], None] | None = None) -> dict[str, StyleReferences]:
    """Trains the style classifier on the real music of `corpora` (validation
    splits) and `references` (reference corpora, both splits), measures each
    style's norms on its whole corpus, and writes them all to `out`.

    Returns the references written, per style.
    """
    from training.classify import cross_validated_probabilities, fit, real_excerpt_rows
    from training.prepare import read_prepared

    if progress:
        progress("learning the styles")
    rows, labels, groups, _ = real_excerpt_rows(corpora, references, EXCERPT_SECONDS)
    x = np.array(rows)
    classifier = fit(x, labels)
    held_out = cross_validated_probabilities(x, labels, groups)
    styles = sorted(set(labels))
    written = {}
    for style, data_dir in sorted(corpora.items()):
        if progress:
            progress(f"measuring {style}")
        pieces = [piece for split in ("train", "validation")
                  for piece in read_prepared(data_dir, split)]
        matches = [p[styles.index(style)] for p, label in zip(held_out, labels)
                   if label == style and p is not None]
        written[style] = dataclasses.replace(
            corpus_references(pieces, corpus_is_metric(data_dir)),
            real_style_match=float(np.mean(matches)) if matches else None)
    if not written:
        raise PerfRNNError("give at least one style")
    write_scoring_file(out, classifier, written)
    return written
