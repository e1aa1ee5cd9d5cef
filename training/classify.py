"""Genre fidelity: does generated "rock" sound like rock? (`python -m training classify`)

A style classifier is trained on held-out real music of the styles (the
validation splits of their prepared corpora, cut into excerpts, and any
reference corpora: real music no model trained on), never on generated
music, and then labels pieces each bundle generates. It sees
musical content only: pitches, rhythms, drum patterns, density and which
kinds of parts play (drums or pitched, low or high). It never sees GM
program numbers or track names, since the "type" setting decides those.

The classifier is multinomial logistic regression on standardised features
(numpy, full-batch gradient descent with L2), with classes weighted so a
style with fewer excerpts counts as much. Its accuracy on real music is
estimated by k-fold cross-validation over source files.

`build_scoring` (`python -m training references`) trains the same classifier
for the website and the sampler to judge pieces with, and writes it with
each style's norms to the `scoring.json` beside the shipped bundles.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perfrnn.errors import PerfRNNError
from perfrnn.scoring import EXCERPT_SECONDS, StyleReferences, write_scoring_file
from perfrnn.style_classifier import FEATURES, StyleClassifier, features

__all__ = ["FEATURES", "StyleClassifier", "features", "fit", "genre_fidelity"]


def fit(x: np.ndarray, labels: Sequence[str], l2: float = 1e-2,
        steps: int = 2000, learning_rate: float = 0.5) -> StyleClassifier:
    """Multinomial logistic regression with balanced class weights."""
    styles = sorted(set(labels))
    y = np.array([styles.index(label) for label in labels])
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    one_hot = np.eye(len(styles))[y]
    counts = one_hot.sum(axis=0)
    sample_weight = (len(y) / (len(styles) * counts))[y][:, None]
    weights = np.zeros((z.shape[1], len(styles)))
    for _ in range(steps):
        logits = z @ weights
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        gradient = z.T @ ((p - one_hot) * sample_weight) / len(y) + l2 * weights
        weights -= learning_rate * gradient
    return StyleClassifier(styles, mean, scale, weights)


def confusion(true: Sequence[str], predicted: Sequence[str], styles: Sequence[str]) -> np.ndarray:
    matrix = np.zeros((len(styles), len(styles)), int)
    for t, p in zip(true, predicted):
        matrix[styles.index(t), styles.index(p)] += 1
    return matrix


def _fold_of(groups: list[str], folds: int, seed: int) -> dict[str, int]:
    """Each group's fold, at random (whole groups held out together)."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i]: rank % folds for rank, i in enumerate(order)}


def cross_validated_probabilities(x: np.ndarray, labels: list[str], groups: list[str],
                                  folds: int = 5, seed: int = 0) -> list[np.ndarray | None]:
    """Each row's style probabilities (in sorted label order) from a classifier
    that did not see its group (whole source files held out per fold); None
    where no fold could test it."""
    fold_of = _fold_of(groups, folds, seed)
    styles = sorted(set(labels))
    result: list[np.ndarray | None] = [None] * len(labels)
    for fold in range(folds):
        test = np.array([fold_of[g] == fold for g in groups])
        if test.all() or not test.any():
            continue
        model = fit(x[~test], [label for label, held in zip(labels, test) if not held])
        probabilities = model.probabilities(x[test])
        for index, row in zip(np.flatnonzero(test), probabilities):
            full = np.zeros(len(styles))  # a fold may lack a style: it gets 0
            for column, style in enumerate(model.styles):
                full[styles.index(style)] = row[column]
            result[index] = full
    return result


def cross_validated_predictions(x: np.ndarray, labels: list[str], groups: list[str],
                                folds: int = 5, seed: int = 0) -> list[str | None]:
    """Each row's label as predicted by a classifier that did not see its group
    (whole source files held out per fold); None where no fold could test it."""
    styles = sorted(set(labels))
    return [None if p is None else styles[int(np.argmax(p))]
            for p in cross_validated_probabilities(x, labels, groups, folds, seed)]


def cross_validate(x: np.ndarray, labels: list[str], groups: list[str], folds: int = 5,
                   seed: int = 0) -> float:
    """Accuracy on real music, with whole source files held out per fold."""
    return accuracy(labels, cross_validated_predictions(x, labels, groups, folds, seed))


def accuracy(labels: Sequence[str], predicted: Sequence[str | None]) -> float:
    """The share of rows predicted as their label."""
    return sum(p == label for p, label in zip(predicted, labels)) / len(labels)


def recall_by_style(labels: Sequence[str], predicted: Sequence[str | None]) -> dict[str, float]:
    """Per style, the share of its rows predicted as it."""
    return {style: float(np.mean([p == style for p, label in zip(predicted, labels)
                                  if label == style]))
            for style in sorted(set(labels))}


@dataclass
class FidelityResult:
    styles: list[str]
    real_excerpts: dict[str, int]
    real_cross_validated_accuracy: float
    matrix: np.ndarray  # rows: style asked for, columns: style predicted
    seconds: float
    temperature: float
    references: dict[str, list[str]] = field(default_factory=dict)
    real_accuracy: dict[str, float] = field(default_factory=dict)  # cross-validated, per style

    @property
    def accuracy(self) -> dict[str, float]:
        return {style: float(self.matrix[i, i] / max(self.matrix[i].sum(), 1))
                for i, style in enumerate(self.styles)}

    def to_json(self) -> dict:
        return {"styles": self.styles, "real_excerpts": self.real_excerpts,
                "real_cross_validated_accuracy": self.real_cross_validated_accuracy,
                "confusion": self.matrix.tolist(), "accuracy": self.accuracy,
                "seconds": self.seconds, "temperature": self.temperature,
                "references": self.references, "real_accuracy": self.real_accuracy}


def real_excerpt_rows(corpora: dict[str, Path], references: dict[str, list[Path]],
                      seconds: float) -> tuple[list[np.ndarray], list[str], list[str],
                                               dict[str, int]]:
    """The classifier's real music: `seconds`-long excerpts of each style's
    validation split and of all of its reference corpora (both splits).

    Returns (feature rows, style labels, source-file groups, excerpts per style).
    """
    from training.evaluate import excerpts
    from training.prepare import read_prepared

    rows, labels, groups, counts = [], [], [], {}
    for style, data_dir in sorted(corpora.items()):
        pieces_real = [(data_dir, p) for p in read_prepared(data_dir, "validation") if p.notes]
        for reference in references.get(style, []):
            pieces_real += [(reference, p) for split in ("train", "validation")
                            for p in read_prepared(reference, split) if p.notes]
        if not pieces_real:
            raise PerfRNNError(f"{data_dir} has no validation music to learn {style!r} from")
        count = 0
        for source, piece in pieces_real:
            for excerpt in excerpts([piece], seconds, limit=10**6):
                rows.append(features(excerpt))
                labels.append(style)
                groups.append(f"{style}/{source}/{piece.filename}")
                count += 1
        counts[style] = count
    return rows, labels, groups, counts


def genre_fidelity(corpora: dict[str, Path], bundles: dict[str, Path], pieces: int = 100,
                   seconds: float = 30.0, temperature: float = 1.0, seed: int = 0,
                   progress: Callable[[str, int, int], None] | None = None,
                   references: dict[str, list[Path]] | None = None) -> FidelityResult:
    """Trains on held-out real excerpts of `corpora`, labels `pieces` generated by
    each of `bundles` (same style names), and returns the confusion matrix.

    `references` adds, per style, prepared corpora whose every file is real
    music that no model trained on (both splits are read). A style split by
    whole groove families may hold out only two or three: the classifier
    would learn those families, not the style. Fresh takes of all of its
    families (`python -m datasets build STYLE --seed 1`) stand for it better;
    they are new pieces, but of the grooves the model trained on too.
    """
    from perfrnn.bundle import read_bundle
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler
    from training.evaluate import BATCH_VARIATIONS

    if set(bundles) - set(corpora):
        raise PerfRNNError(f"no real music for {sorted(set(bundles) - set(corpora))}: give "
                           "a prepared corpus for every style")
    references = references or {}
    if set(references) - set(corpora):
        raise PerfRNNError(f"reference music for {sorted(set(references) - set(corpora))}, "
                           "which have no corpus")
    rows, labels, groups, counts = real_excerpt_rows(corpora, references, seconds)
    x = np.array(rows)
    real_predicted = cross_validated_predictions(x, labels, groups)
    model = fit(x, labels)
    styles = model.styles
    asked, predicted = [], []
    for style, path in sorted(bundles.items()):
        bundle = read_bundle(path)
        sampler = Sampler(bundle)
        made = 0
        while made < pieces:
            count = min(BATCH_VARIATIONS, pieces - made)
            generation = sampler.generate(GenerationOptions(
                seconds=seconds, temperature=temperature, seed=seed + made, variations=count))
            for sequence in generation.sequences:
                sequence.tempos.add(qpm=bundle.metadata.default_bpm)  # the beat grid
                predicted.extend(model.predict(features(sequence)))
                asked.append(style)
            made += count
            if progress is not None:
                progress(style, made, pieces)
    return FidelityResult(styles=styles, real_excerpts=counts,
                          real_cross_validated_accuracy=float(accuracy(labels, real_predicted)),
                          matrix=confusion(asked, predicted, styles), seconds=seconds,
                          temperature=temperature,
                          references={style: [str(path) for path in paths]
                                      for style, paths in references.items()},
                          real_accuracy=recall_by_style(labels, real_predicted))


def render_fidelity_report(result: FidelityResult) -> str:
    styles = result.styles
    lines = [
        "# Genre fidelity",
        "",
        f"A content-only classifier (logistic regression over {len(FEATURES)} features: "
        "pitches, rhythm, drum pattern, density, which kinds of parts play; never GM "
        "programs or track names) trained on held-out real excerpts of "
        f"{result.seconds:g} s: " + ", ".join(f"{s} {n}" for s, n in
                                              result.real_excerpts.items()) + ".",
        f"Its cross-validated accuracy on real music (source files held out): "
        f"{result.real_cross_validated_accuracy:.1%}.",
        *(["Besides each corpus's held-out split, it also learned from reference music "
           "that no model trained on: " + "; ".join(
               f"{style} {', '.join(paths)}" for style, paths in result.references.items())
           + "."] if result.references else []),
        "",
        f"Generated pieces ({result.seconds:g} s, temperature {result.temperature:g}), rows: "
        "the style asked for; columns: what the classifier heard. \"real music\": the share "
        "of the style's real excerpts it hears as the style when their source files are "
        "held out (cross-validated): how sharply it tells the style apart.",
        "",
        "| asked \\ heard | " + " | ".join(styles) + " | accuracy | real music |",
        "|---|" + "---:|" * (len(styles) + 2),
    ]
    for i, style in enumerate(styles):
        if result.matrix[i].sum():
            real = result.real_accuracy.get(style)
            lines.append(f"| {style} | " + " | ".join(str(v) for v in result.matrix[i])
                         + f" | {result.accuracy[style]:.0%} | "
                         + ("-" if real is None else f"{real:.0%}") + " |")
    return "\n".join(lines) + "\n"


def write_report(result: FidelityResult, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fidelity.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
    path = out_dir / "fidelity.md"
    path.write_text(render_fidelity_report(result), encoding="utf-8")
    return path


def build_scoring(corpora: dict[str, Path], references: dict[str, list[Path]], out: Path,
                  progress: Callable[[str], None] | None = None) -> dict[str, StyleReferences]:
    """Trains the style classifier on the real music of `corpora` (validation
    splits) and `references` (reference corpora, both splits), measures each
    style's norms on its whole corpus, and writes them all to `out`.

    Returns the references written, per style.
    """
    from training.prepare import read_prepared
    from training.references import corpus_is_metric, corpus_references

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
