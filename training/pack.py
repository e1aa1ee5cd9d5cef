"""Corpora as event arrays for the GPU trainer (`python -m training pack`).

A GPU machine may have PyTorch but no TensorFlow or note-seq (a stock deep
learning image). `pack_corpus` does the note-seq work here: it encodes the
prepared corpus' validation pieces as they are and each training piece
`augmentations` times with Magenta's augmentation (a random stretch and
transpose per copy), and writes one compressed `.npz` of int16 event arrays
that `training/gpu_train.py` reads with numpy alone. `import_weights` brings
the trained weights back as a run folder that `evaluate` and `export` take.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from perfrnn.configs import get_config
from perfrnn.errors import PerfRNNError

PACK_FORMAT = "perfrnn-event-pack/1"
DEFAULT_AUGMENTATIONS = 8


def pack_corpus(data_dir: str | Path, out_path: str | Path, config_id: str,
                augmentations: int = DEFAULT_AUGMENTATIONS, seed: int = 0) -> dict:
    """Writes the pack; returns its metadata (counts of pieces and events per split)."""
    from training.prepare import read_manifest, read_prepared
    from training.train import ExampleMaker, _check_manifest_config

    config = get_config(config_id)
    if config.is_metric:
        raise PerfRNNError(f"configuration {config_id!r} is metric: its position inputs are not "
                           "packed for training/gpu_train.py yet; train it with "
                           "`python -m training train`")
    if not isinstance(augmentations, int) or augmentations < 1:
        raise PerfRNNError(f"augmentations must be a whole number >= 1, got {augmentations!r}")
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    _check_manifest_config(manifest, config, [])
    maker = ExampleMaker(config, sequence_length=1)
    rng = np.random.default_rng(seed)
    train = [s for s in read_prepared(data_dir, "train") if s.notes]
    if not train:
        raise PerfRNNError(f"{data_dir} has no training pieces")
    try:
        validation = [s for s in read_prepared(data_dir, "validation") if s.notes]
    except PerfRNNError:
        validation = []
    train_events = [maker.encode(maker.augment(piece, rng) if copy else piece)
                    for piece in train for copy in range(augmentations)]
    validation_events = [maker.encode(piece) for piece in validation]
    encoding = maker.encoding
    meta = {
        "format": PACK_FORMAT,
        "name": manifest.get("name"),
        "data": str(data_dir),
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
    partial = out_path.with_name(out_path.name + ".partial.npz")
    np.savez_compressed(partial, meta=np.array(json.dumps(meta)), train_events=train_flat,
                        train_offsets=train_offsets, validation_events=validation_flat,
                        validation_offsets=validation_offsets)
    partial.replace(out_path)
    return meta


def import_weights(weights_path: str | Path, run_dir: str | Path,
                   data_dir: str | Path | None = None) -> Path:
    """Turns gpu_train's output (`NAME.npz`, and `NAME.more.npz` beside it for a
    big model) into a run folder for evaluate/export.

    The run folder gets `train_config.json`, `history.json` and the weights as
    its `best/` checkpoint. `data_dir` overrides the corpus path the pack named.
    """
    import tensorflow as tf

    from perfrnn.encoding import encoding_for
    from perfrnn.model import PerformanceRNN
    from training.train import BEST_DIR, HISTORY_NAME, TRAIN_CONFIG_NAME, _write_json

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
    config = get_config(meta["config"]).replace(rnn_layer_sizes=model.layer_sizes)
    encoding = encoding_for(config)
    if (model.input_size, model.num_classes) != (encoding.input_size, encoding.num_classes):
        raise PerfRNNError(f"{weights_path} does not fit configuration {config.id!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {"data": str(data_dir or meta["data"]), "config": config.id,
                "layer_sizes": list(model.layer_sizes),
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
