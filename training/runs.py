"""A training run's folder: where `python -m training train` keeps its
settings, checkpoints, best weights and history, and reading it back with
the data it learned from (for export, evaluation and fine-tuning)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from perfrnn.configs import ModelConfig, get_config
from perfrnn.errors import PerfRNNError

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
LOG_DIR = "logs"
HISTORY_NAME = "history.json"
TRAIN_CONFIG_NAME = "train_config.json"


@dataclass
class Run:
    """A training run folder, loaded: configuration, weights and what happened."""

    path: Path
    config: ModelConfig
    model: object  # perfrnn.model.PerformanceRNN
    step: int
    checkpoint: str
    settings: dict
    history: list[dict]
    data_dir: Path | None
    manifest: dict | None

    @property
    def best_validation_nll(self) -> float | None:
        values = [point["validation_nll"] for point in self.history
                  if point.get("validation_nll") is not None]
        return min(values) if values else None

    @property
    def is_base(self) -> bool:
        """A base model: trained on several corpora, each a style of its style input."""
        return self.config.has_style_input and not self.settings.get("style_mix")

    @property
    def style_name(self) -> str:
        """The style of a run of one corpus: its corpus's name (else the run folder's)."""
        from training.prepare import corpus_name

        return corpus_name(self.manifest, self.data_dir or self.path)

    def best_validation_nll_of(self, style: str) -> float | None:
        """A base's validation NLL on one style's corpus at its best step (the
        run's own best for a run of one corpus)."""
        points = [point for point in self.history if point.get("validation_nll") is not None]
        if not points:
            return None
        best = min(points, key=lambda point: point["validation_nll"])
        if self.is_base:
            return (best.get("style_validation_nll") or {}).get(style)
        return best["validation_nll"]


def run_data_dirs(settings: dict) -> list[Path]:
    """The corpus folders a run trained on (train_config.json's "data": one
    folder, or a base's several)."""
    data = settings.get("data") or []
    return [Path(path) for path in ([data] if isinstance(data, str) else data)]


def load_run(run_dir: str | Path, style: str | None = None) -> Run:
    """Loads the best (or else the latest) weights of a run written by `train_model`.

    For a base model (several corpora), `style` picks the corpus whose
    manifest the run's data and metadata come from.

    Raises:
      PerfRNNError: not a run folder, or no checkpoint in it.
    """
    import tensorflow as tf

    from perfrnn.encodings import encoding_for
    from perfrnn.model import PerformanceRNN

    run_dir = Path(run_dir)
    settings_path = run_dir / TRAIN_CONFIG_NAME
    if not settings_path.is_file():
        raise PerfRNNError(f"{run_dir} is not a training run (no {TRAIN_CONFIG_NAME}); "
                           "run `python -m training train` first")
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        config = get_config(settings["config"]).replace(
            rnn_layer_sizes=tuple(int(size) for size in settings["layer_sizes"]),
            style_names=tuple(str(name) for name in settings.get("style_names", ())))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PerfRNNError(f"cannot read {settings_path} ({error})") from None
    checkpoint = (tf.train.latest_checkpoint(str(run_dir / BEST_DIR))
                  or tf.train.latest_checkpoint(str(run_dir / CHECKPOINT_DIR)))
    if not checkpoint:
        raise PerfRNNError(f"{run_dir} holds no checkpoint yet; train for at least "
                           "one checkpoint interval")
    encoding = encoding_for(config)
    model = PerformanceRNN(encoding.input_size, encoding.num_classes, config.rnn_layer_sizes)
    step = tf.Variable(0, dtype=tf.int64)
    try:
        tf.train.Checkpoint(model=model, step=step).restore(checkpoint).expect_partial()
    except (ValueError, tf.errors.OpError) as error:
        raise PerfRNNError(f"cannot load {checkpoint} ({str(error).splitlines()[0]})") from None
    history = []
    if (run_dir / HISTORY_NAME).is_file():
        try:
            history = json.loads((run_dir / HISTORY_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            history = []
    data_dirs = run_data_dirs(settings)
    if len(data_dirs) > 1 and style is not None:
        check_style(config, style, str(run_dir))
    data_dir, manifest = None, None
    from training.prepare import corpus_name, read_manifest

    for path in data_dirs:  # a base's corpora: the one of the style asked for
        try:
            found = read_manifest(path)
        except PerfRNNError:
            found = None
        if len(data_dirs) == 1 or corpus_name(found, path) == style:
            data_dir, manifest = path, found
            break
    return Run(path=run_dir, config=config, model=model, step=int(step.numpy()),
               checkpoint=checkpoint, settings=settings, history=history,
               data_dir=data_dir, manifest=manifest)


def provenance_from_manifest(manifest: dict | None) -> list[dict]:
    """Sources and licences of the used files: one dict per (origin, licence)."""
    if not manifest:
        return []
    groups: Counter = Counter()
    seconds: Counter = Counter()
    for record in manifest.get("files", []):
        if record.get("status") != "used":
            continue
        # A user's folder by its name only: a card never shows a server's paths.
        key = (record.get("origin") or f"user files ({Path(str(record.get('input'))).name})",
               record.get("licence") or "unknown: the uploader's files")
        groups[key] += 1
        seconds[key] += float(record.get("seconds") or 0.0)
    return [{"source": source, "licence": licence, "files": count,
             "minutes": round(seconds[(source, licence)] / 60.0, 1)}
            for (source, licence), count in sorted(groups.items())]


def inherited_provenance(run: Run, style: str) -> list[dict]:
    """What the weights learned besides the style's own corpus, each entry with
    "learned_in": a base's other corpora, and a fine-tuned style's parent's
    data (recorded when training started). Their licences apply to the
    weights too."""
    from training.prepare import corpus_name, read_manifest

    inherited = []
    if run.is_base:
        for path in run_data_dirs(run.settings):
            try:
                manifest = read_manifest(path)
            except PerfRNNError:
                raise PerfRNNError(
                    f"the base's corpus {path} cannot be read, and the card must list the "
                    "licences of everything its weights learned from: keep the base's "
                    "--data folders where they were") from None
            name = corpus_name(manifest, path)
            if name != style:
                inherited += [{**item, "learned_in": f"the base's {name} corpus"}
                              for item in provenance_from_manifest(manifest)]
    parent = run.settings.get("parent")
    for item in run.settings.get("parent_provenance") or []:
        if isinstance(item, dict):
            inherited.append({**item, "learned_in": item.get("learned_in")
                              or f"its parent {Path(str(parent)).name}"})
    return inherited


def check_style(config: ModelConfig, style: str | None, source: str) -> None:
    """Raises PerfRNNError unless `style` is one of a base model's styles."""
    if style not in config.style_names:
        given = f" ({style!r} is not one)" if style else ""
        raise PerfRNNError(f"{source} is a base model of the styles "
                           f"{', '.join(config.style_names)}; choose one with --style NAME"
                           f"{given}")
