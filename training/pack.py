"""Corpora as event arrays for the GPU trainer (`python -m training pack`).

A GPU machine may have PyTorch but no TensorFlow or note-seq (a stock deep
learning image). `pack_corpus` does the note-seq work here: it encodes the
prepared corpus' validation pieces as they are and each training piece
`augmentations` times with Magenta's augmentation (a random stretch and
transpose per copy), and writes one compressed `.npz` of int16 event arrays
that `training/gpu_train.py` reads with numpy alone. `import_weights` brings
the trained weights back as a run folder that `evaluate` and `export` take.

A metric configuration's control inputs (position, and the style input of a
base packed from several corpora) are binary: the pack stores, for every
event, the columns where its input row's controls are 1 (`*_ones`, uint8), so
the GPU side rebuilds the rows without knowing what a bar is, and the piece's
corpus (`*_corpus`) so it draws the corpora evenly as `train` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from perfrnn.configs import ModelConfig, get_config
from perfrnn.errors import PerfRNNError

PACK_FORMAT = "perfrnn-event-pack/1"
DEFAULT_AUGMENTATIONS = 8


def pack_corpus(data_dir: str | Path | list, out_path: str | Path, config_id: str,
                augmentations: int = DEFAULT_AUGMENTATIONS, seed: int = 0) -> dict:
    """Writes the pack; returns its metadata (counts of pieces and events per split).
    Several prepared corpora (metric configurations) make a base model's pack."""
    from training.base import style_names_of
    from training.prepare import corpus_name, read_manifest, read_prepared
    from training.train import ExampleMaker, _check_manifest_config

    config = get_config(config_id)
    if not isinstance(augmentations, int) or augmentations < 1:
        raise PerfRNNError(f"augmentations must be a whole number >= 1, got {augmentations!r}")
    data_dirs = [Path(data_dir)] if isinstance(data_dir, (str, Path)) else \
        [Path(path) for path in data_dir]
    manifests = [read_manifest(path) for path in data_dirs]
    for manifest in manifests:
        _check_manifest_config(manifest, config, [])
    names = [corpus_name(manifest, path) for manifest, path in zip(manifests, data_dirs)]
    if len(data_dirs) > 1:
        config = config.replace(style_names=style_names_of(names, config))
    maker = ExampleMaker(config, sequence_length=1)
    encoding = maker.encoding
    rng = np.random.default_rng(seed)
    styles = np.eye(len(data_dirs), dtype=np.float32) if len(data_dirs) > 1 else [None]
    split_events = {"train": [], "validation": []}
    split_ones = {"train": [], "validation": []}
    split_corpus = {"train": [], "validation": []}
    for index, path in enumerate(data_dirs):
        for split, copies in (("train", augmentations), ("validation", 1)):
            try:
                pieces = [s for s in read_prepared(path, split) if s.notes]
            except PerfRNNError:
                pieces = []
            if split == "train" and not pieces:
                raise PerfRNNError(f"{path} has no training pieces")
            for piece in pieces:
                for copy in range(copies):
                    events = maker.encode(maker.augment(piece, rng) if copy else piece)
                    split_events[split].append(events)
                    split_corpus[split].append(index)
                    if config.is_metric:
                        split_ones[split].append(control_ones(encoding.controls_from_events(
                            events, metre=maker.metre(piece), style=styles[index])))
    train_events, validation_events = split_events["train"], split_events["validation"]
    meta = {
        "format": PACK_FORMAT,
        "name": names[0] if len(names) == 1 else "base",
        "data": str(data_dirs[0]) if len(data_dirs) == 1 else [str(p) for p in data_dirs],
        "style_names": list(config.style_names),
        **encoding_meta(config),
        "augmentations": augmentations,
        "train_pieces": len(train_events),
        "train_events": int(sum(len(e) for e in train_events)),
        "validation_pieces": len(validation_events),
        "validation_events": int(sum(len(e) for e in validation_events)),
    }

    def flat(pieces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.cumsum([0] + [len(piece) for piece in pieces]).astype(np.int64)
        events = (np.concatenate(pieces) if pieces else np.zeros(0)).astype(np.int16)
        return events, offsets

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    train_flat, train_offsets = flat(train_events)
    validation_flat, validation_offsets = flat(validation_events)
    extra = {}
    for split in ("train", "validation"):
        extra[f"{split}_corpus"] = np.array(split_corpus[split], np.int16)
        if config.is_metric:
            extra[f"{split}_ones"] = (np.concatenate(split_ones[split]) if split_ones[split]
                                      else np.zeros((0, 0), np.uint8))
    partial = out_path.with_name(out_path.name + ".partial.npz")
    np.savez_compressed(partial, meta=np.array(json.dumps(meta)), train_events=train_flat,
                        train_offsets=train_offsets, validation_events=validation_flat,
                        validation_offsets=validation_offsets, **extra)
    partial.replace(out_path)
    return meta


def encoding_meta(config: ModelConfig) -> dict:
    """What `training/gpu_train.py` reads of a configuration: its sizes, whether
    the controls are packed as ones (metric), and the control signals'
    settings (steps per second, shift steps, density bins in notes per
    second, window lengths in seconds), so it extracts them without note-seq."""
    from perfrnn.encodings import encoding_for

    encoding = encoding_for(config)
    if encoding.history_inputs:
        raise PerfRNNError(f"configuration {config.id!r} has history inputs, which packs for "
                           "the GPU trainer do not hold yet; train it with "
                           "`python -m training train`")
    return {
        "control_ones": bool(config.is_metric),
        "config": config.id,
        "num_classes": encoding.num_classes,
        "input_size": encoding.input_size,
        "control_size": encoding.control_size,
        "steps_per_second": config.steps_per_second,
        "max_shift_steps": config.max_shift_steps,
        "density_bin_ranges": (list(config.density_bin_ranges)
                               if config.density_bin_ranges is not None else None),
        "density_window_seconds": config.density_window_seconds,
        "pitch_histogram_window_seconds": config.pitch_histogram_window_seconds,
    }


def control_ones(controls: np.ndarray) -> np.ndarray:
    """The columns where each binary control row is 1 [rows, ones per row] (uint8)."""
    rows, columns = np.nonzero(controls)
    per_row = np.bincount(rows, minlength=len(controls))
    if len(controls) and (per_row.min() != per_row.max() or not np.isin(controls, (0, 1)).all()):
        raise PerfRNNError("these control inputs are not one-hot blocks; they cannot be packed")
    return columns.reshape(len(controls), -1).astype(np.uint8)


def import_weights(weights_path: str | Path, run_dir: str | Path,
                   data_dir: str | Path | None = None) -> Path:
    """Turns gpu_train's output (`NAME.npz`, and `NAME.more.npz` beside it for a
    big model) into a run folder for evaluate/export.

    The run folder gets `train_config.json`, `history.json` and the weights as
    its `best/` checkpoint. `data_dir` overrides the corpus path the pack named.
    """
    import tensorflow as tf

    from perfrnn.encodings import encoding_for
    from perfrnn.model import PerformanceRNN
    from training.runs import BEST_DIR, HISTORY_NAME, TRAIN_CONFIG_NAME
    from training.train import _write_json

    try:
        stored = np.load(weights_path, allow_pickle=False)
        meta = json.loads(str(stored["meta"]))
        weights = {name[len("w:"):]: stored[name].astype(np.float32)
                   for name in stored.files if name.startswith("w:")}
        more = Path(weights_path).with_suffix(".more.npz")
        if more.is_file():  # the upper layers of a big model (see gpu_train.py)
            extra = np.load(more, allow_pickle=False)
            weights.update({name[len("w:"):]: extra[name].astype(np.float32)
                            for name in extra.files if name.startswith("w:")})
    except (OSError, ValueError, KeyError) as error:
        raise PerfRNNError(f"cannot read GPU weights {weights_path} ({error})") from None
    model = PerformanceRNN.from_weights(weights)
    config = get_config(meta["config"]).replace(
        rnn_layer_sizes=model.layer_sizes, style_names=tuple(meta.get("style_names") or ()))
    encoding = encoding_for(config)
    if (model.input_size, model.num_classes) != (encoding.input_size, encoding.num_classes):
        raise PerfRNNError(f"{weights_path} does not fit configuration {config.id!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {"data": str(data_dir) if data_dir else meta["data"], "config": config.id,
                "layer_sizes": list(model.layer_sizes),
                "style_names": list(config.style_names),
                "sequence_length": int(meta["sequence_length"]),
                "batch_size": int(meta["batch_size"]),
                "trainer": meta.get("trainer"), "device": meta.get("device"),
                "train_seconds": meta.get("train_seconds")}
    _write_json(run_dir / TRAIN_CONFIG_NAME, settings)
    _write_json(run_dir / HISTORY_NAME, meta.get("history", []))
    step = tf.Variable(int(meta["step"]), dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, step=step),
                                         str(run_dir / BEST_DIR), max_to_keep=1)
    manager.save(checkpoint_number=int(meta["step"]))
    return run_dir
