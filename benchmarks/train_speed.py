"""Training speed: events per second for a 3x512 and a 3x256 Performance RNN.

    .venv/bin/python benchmarks/train_speed.py                    # CPU (and GPU if present)
    .venv/bin/python benchmarks/train_speed.py --layers 512 512 512 --batch 16 --length 512
    .venv/bin/python benchmarks/train_speed.py --xla on           # force XLA for the step
    .venv/bin/python benchmarks/train_speed.py --layers 256 256 --batch 32 --length 256 \
        --classes 1104 --controls 36 --end-to-end-steps 0         # the metric band base

Prints figures; it asserts nothing. Two figures per model:

- "step": the training step alone (forward, backward, Adam with clipping) on
  batches already in memory, median of --repeats timed steps after warm-up.
  This is the model's speed, comparable with Magenta's ~800 events/s for 3x512
  on this machine class (batch 16 x 512 events took about 10 s a step).
- "end to end": `training.train.train_model` on a prepared synthetic corpus
  (augmentation, encoding, tf.data, checkpoints off the clock), the rate it
  reports, which includes the input pipeline.

The corpus is synthetic piano-like music (random walks in a scale with
chords and dynamics) written by this script; events per second count real
(non-padding) labels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", action="append", default=None,
                        help="LSTM sizes; repeat for several models (default: 512x3 and 256x3)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step (default: 16)")
    parser.add_argument("--length", type=int, default=512,
                        help="events per sequence (default: 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (default: 5)")
    parser.add_argument("--classes", type=int, default=388,
                        help="events in the vocabulary (388: piano; 1104: a metric band)")
    parser.add_argument("--controls", type=int, default=0,
                        help="control inputs per row (36: a metric band base's position "
                             "and style; step figure only)")
    parser.add_argument("--end-to-end-steps", type=int, default=8,
                        help="train_model steps for the end-to-end figure; 0 skips it "
                             "(default: 8)")
    parser.add_argument("--xla", choices=("auto", "on", "off"), default="auto",
                        help="XLA for the step: auto = on for a GPU, off on a CPU (as "
                             "train_model does)")
    parser.add_argument("--device", choices=("all", "cpu", "gpu"), default="all",
                        help="which devices to time (default: every one present)")
    return parser.parse_args()


def synthetic_corpus(folder: Path, pieces: int = 12, seconds: float = 60.0) -> None:
    import numpy as np
    import pretty_midi

    rng = np.random.default_rng(0)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    for index in range(pieces):
        midi = pretty_midi.PrettyMIDI(initial_tempo=120)
        piano = pretty_midi.Instrument(program=0)
        now, degree = 0.0, 14
        while now < seconds:
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 27))
            root = 48 + 12 * (degree // 7) + scale[degree % 7]
            chord = [root] + ([root - 12, root - 8] if rng.random() < 0.3 else [])
            length = float(rng.choice([0.125, 0.25, 0.5]))
            for pitch in chord:
                piano.notes.append(pretty_midi.Note(
                    velocity=int(rng.integers(40, 110)), pitch=int(pitch),
                    start=now, end=now + length * rng.uniform(0.6, 1.2)))
            now += length
        midi.instruments.append(piano)
        midi.write(str(folder / f"piece{index}.mid"))


def time_steps(layer_sizes, batch: int, length: int, repeats: int, jit: bool,
               device: str, classes: int = 388, controls: int = 0) -> float:
    """Median events per second of the training step alone."""
    import numpy as np
    import tensorflow as tf

    from perfrnn.model import PerformanceRNN
    from training.train import make_train_step

    with tf.device(device):
        model = PerformanceRNN(controls + classes, classes, layer_sizes, seed=0)
        optimizer = tf.keras.optimizers.Adam(1e-3, global_clipnorm=3.0)
        step = make_train_step(model, optimizer, jit_compile=jit)
        rng = np.random.default_rng(0)
        events = rng.integers(0, classes, (batch, length + 1))
        rows = (rng.random((batch, length, controls)) < 0.1).astype(np.float32)
        window = (tf.constant(rows), tf.constant(events[:, :-1], tf.int32),
                  tf.constant(events[:, 1:], tf.int32), tf.ones((batch, length)))
        for _ in range(2):  # trace, compile, warm up
            float(step(*window)[0])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            float(step(*window)[0])
            times.append(time.perf_counter() - start)
    return batch * length / statistics.median(times)


def end_to_end(corpus: Path, layer_sizes, batch: int, length: int, steps: int,
               jit: bool | None) -> float:
    from training.train import train_model

    with tempfile.TemporaryDirectory() as run:
        result = train_model(corpus, run, layer_sizes=list(layer_sizes), steps=steps,
                             batch_size=batch, sequence_length=length, eval_every=10**6,
                             checkpoint_every=10**6, patience=0, jit_compile=jit,
                             log=lambda text: None)
    return result.events_per_second


def main() -> None:
    args = parse_args()
    import tensorflow as tf

    from training.prepare import prepare_corpus

    models = args.layers or [[512, 512, 512], [256, 256, 256]]
    gpus = tf.config.list_physical_devices("GPU")
    devices = []
    if args.device in ("all", "cpu"):
        devices.append(("CPU", "/CPU:0"))
    if args.device in ("all", "gpu") and gpus:
        devices.append(("GPU", "/GPU:0"))
    cpu_name = os.uname().machine
    print(f"TensorFlow {tf.__version__}; {os.cpu_count()} CPU cores ({cpu_name}); "
          f"GPUs: {[gpu.name for gpu in gpus] or 'none'}")
    print(f"batch {args.batch} x {args.length} events; step figures are medians of "
          f"{args.repeats} steps")
    print()
    print(f"{'model':<12}{'device':<8}{'xla':<6}{'step events/s':>16}{'end-to-end events/s':>22}")
    with tempfile.TemporaryDirectory() as work:
        corpus = Path(work) / "data"
        if args.end_to_end_steps:
            music = Path(work) / "music"
            music.mkdir()
            synthetic_corpus(music)
            prepare_corpus("benchmark", [music], corpus, validation_fraction=0.0)
        for label, device in devices:
            jit = {"on": True, "off": False}.get(args.xla, label == "GPU")
            for layer_sizes in models:
                rate = time_steps(layer_sizes, args.batch, args.length, args.repeats, jit,
                                  device, args.classes, args.controls)
                full = ""
                if args.end_to_end_steps:
                    with tf.device(device):
                        full = f"{end_to_end(corpus, layer_sizes, args.batch, args.length, args.end_to_end_steps, jit):,.0f}"  # noqa: E501
                name = "x".join(map(str, layer_sizes))
                print(f"{name:<12}{label:<8}{'on' if jit else 'off':<6}{rate:>16,.0f}"
                      f"{full:>22}", flush=True)


if __name__ == "__main__":
    main()
