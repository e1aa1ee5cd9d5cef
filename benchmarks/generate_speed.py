"""Generation speed of the compiled sampler: ms per event, and seconds per 30 s piece.

    .venv/bin/python benchmarks/generate_speed.py                 # 3x512, CPU
    .venv/bin/python benchmarks/generate_speed.py --layers 256 256 256
    .venv/bin/python benchmarks/generate_speed.py --bundle bundles/piano.mag
    .venv/bin/python benchmarks/generate_speed.py --config metric_band --layers 256 256

Prints figures; it asserts nothing. Each figure is the median of --repeats
runs, since a shared machine is noisy. "Loop" figures time the compiled
event loop alone (a fixed number of events, the stop test disabled);
"piece" figures time `Sampler.generate` end to end (primer, loop, decoding
to a NoteSequence). Without --bundle the weights are random, and a random
model moves time forward much faster than real music, so the 30 s piece
figure is also projected at a realistic event rate (--events-per-second,
about what dense piano playing needs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="time this bundle instead of random weights")
    parser.add_argument("--config", default="performance_with_dynamics",
                        help="configuration for random weights, e.g. metric_band "
                             "(default: performance_with_dynamics)")
    parser.add_argument("--layers", type=int, nargs="+", default=[512, 512, 512],
                        help="LSTM sizes for random weights (default: Magenta's 512 512 512)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8],
                        help="batch sizes (variations) to time (default: 1 8)")
    parser.add_argument("--events", type=int, default=2000,
                        help="events per timed loop run (default: 2000)")
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (default: 7)")
    parser.add_argument("--events-per-second", type=float, default=100.0,
                        help="event rate of real music for the projection (default: 100)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op threads (default: all cores)")
    return parser.parse_args()


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from perfrnn.bundle import Bundle, BundleMetadata, read_bundle
    from perfrnn.configs import get_config
    from perfrnn.encodings import encoding_for
    from perfrnn.model import PerformanceRNN
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler

    if args.bundle:
        bundle = read_bundle(args.bundle)
        label = f"{args.bundle} ({'x'.join(map(str, bundle.config.rnn_layer_sizes))})"
    else:
        config = get_config(args.config).replace(rnn_layer_sizes=args.layers)
        encoding = encoding_for(config)
        model = PerformanceRNN(encoding.input_size, encoding.num_classes, args.layers)
        bundle = Bundle(config=config, model=model,
                        metadata=BundleMetadata(style="benchmark", tracks=config.tracks))
        label = f"random weights, {args.config}, {'x'.join(map(str, args.layers))}"
    sampler = Sampler(bundle, block_events=args.events)
    model = bundle.model
    print(f"model: {label}; TensorFlow {tf.__version__}; "
          f"devices: {', '.join(d.device_type for d in tf.config.list_physical_devices())}; "
          f"cpu cores: {os.cpu_count()}; median of {args.repeats}")
    print(f"{'batch':>5}  {'compile s':>9}  {'ms/step':>8}  {'ms/event':>8}  "
          f"{'30 s piece s':>12}  {'events/30 s':>11}  {'projected 30 s piece s':>22}")
    for batch in args.batches:
        state = model.zero_state(batch)
        controls = sampler.encoding.encode_controls()
        position_gates, _ = sampler._position_gates(controls, sampler.metre,
                                                    sampler._style(GenerationOptions()))
        onset_allowed = (sampler.encoding.onset_allowed(sampler.metre)
                         if bundle.config.is_metric else [True])
        args_for_loop = (
            state, tf.fill([batch], sampler.encoding.start_event()), tf.zeros([batch], tf.int32),
            (tf.zeros([batch, sampler._num_keys]), tf.zeros([batch, sampler._num_keys], tf.int32),
             tf.zeros([batch], tf.int32)), tf.constant(2**30), position_gates,
            tf.constant(onset_allowed), tf.constant(0), tf.constant(1.0),
            tf.constant(1, tf.int64), tf.constant(0, tf.int64))

        def run_loop(loop_args=args_for_loop):
            int(sampler._sample_block(*loop_args)[1])

        compile_seconds = median_seconds(run_loop, 1)
        step_ms = median_seconds(run_loop, args.repeats) / args.events * 1000
        options = GenerationOptions(seconds=30, seed=1, variations=batch)
        sampler.generate(options)
        piece = median_seconds(lambda options=options: sampler.generate(options), args.repeats)
        events = max(len(e) for e in sampler.generate(options).events)
        projected = step_ms * args.events_per_second * 30 / 1000
        print(f"{batch:>5}  {compile_seconds:>9.2f}  {step_ms:>8.3f}  {step_ms / batch:>8.3f}  "
              f"{piece:>12.2f}  {events:>11}  {projected:>22.2f}")


if __name__ == "__main__":
    main()
