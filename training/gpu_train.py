"""Train on a GPU machine that has PyTorch but no TensorFlow (numpy + torch only).

    python3 training/gpu_train.py --pack packs/piano.npz packs/rock.npz --out gpu_out \\
        --layers 512 512 512 --minutes 2

Stock deep-learning images ship PyTorch with CUDA, and a GPU build of
TensorFlow with its CUDA libraries is gigabytes to bring along. So this script
trains the very same network with PyTorch's cuDNN LSTM and hands back weights
in Magenta's layout; `python -m training import-weights` turns them into a run
folder that `evaluate` and `export` take, and the bundle is an ordinary `.mag`.

The math is Magenta's: a cuDNN LSTM computes gates [i, f, g, o] with two
biases; Magenta's BasicLSTMCell computes [i, j, f, o] from one kernel and one
bias with 1.0 added to the forget gate. With g = j the two are the same
function, and the weights convert exactly (`magenta_weights`). Before writing,
the script checks the converted weights with a numpy implementation of
Magenta's cell on validation windows: both must give the same NLL.

Input: packs written by `python -m training pack` (int16 event arrays; training
pieces already augmented). Output per pack: OUT/NAME.npz with the best weights
(lowest validation NLL) as float16 ("w:" + Magenta variable name), and a JSON
"meta" entry (configuration, steps, history, device, timing); for a big model
the upper LSTM layers go to OUT/NAME.more.npz (files from the GPU machine must
stay under 16 MiB).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# numpy only: these run where TensorFlow is not installed.
from perfrnn.fast_controls import input_controls  # noqa: E402
from perfrnn.layout import (  # noqa: E402
    FORGET_BIAS,
    GATE_ORDER,
    OUTPUT_BIASES,
    OUTPUT_WEIGHTS,
    gate_permutation,
    gate_slice,
    join_inputs,
    lstm_bias_name,
    lstm_kernel_name,
    lstm_layer_count,
    random_window_start,
    validation_share,
    validation_window_starts,
)

TORCH_GATE_ORDER = ("i", "f", "j", "o")
"""cuDNN's gates [i, f, g, o] under Magenta's names (g is Magenta's j)."""


class PackedPiece:
    """A packed piece: its events, the corpus (style) it comes from, and for a
    metric configuration the columns where each input row's controls are 1."""

    def __init__(self, events: np.ndarray, corpus: int = 0, ones: np.ndarray | None = None):
        self.events, self.corpus, self.ones = events, corpus, ones

    def __len__(self) -> int:
        return len(self.events)


def load_pack(path: Path) -> tuple[dict, list[PackedPiece], list[PackedPiece]]:
    stored = np.load(path, allow_pickle=False)
    meta = json.loads(str(stored["meta"]))

    def split(name):
        events, offsets = stored[f"{name}_events"], stored[f"{name}_offsets"]
        count = len(offsets) - 1
        corpus = stored[f"{name}_corpus"] if f"{name}_corpus" in stored.files else \
            np.zeros(count, np.int16)
        ones = stored[f"{name}_ones"] if meta.get("control_ones") else None
        return [PackedPiece(events[offsets[i]:offsets[i + 1]].astype(np.int64), int(corpus[i]),
                            ones[offsets[i]:offsets[i + 1]] if ones is not None else None)
                for i in range(count)]

    return meta, split("train"), split("validation")


def window_controls(meta: dict, piece: PackedPiece, start: int, used: int) -> np.ndarray:
    """The controls of the `used` input rows of the window from event `start`
    (float16 [used, control_size]), as `python -m training train` builds them:
    a metric piece's packed ones as they are (row t: the position after event
    t, counted from the start of the piece, and the style); a conditioned
    piece's density and key extracted from the window's own events, the label
    event included, row t holding event t+1's."""
    if not meta["control_size"]:
        return np.zeros((used, 0), np.float16)
    if piece.ones is not None:
        rows = np.zeros((used, meta["control_size"]), np.float16)
        rows[np.arange(used)[:, None], piece.ones[start:start + used]] = 1.0
        return rows
    controls = input_controls(
        piece.events[start:start + used + 1], meta["steps_per_second"],
        meta["max_shift_steps"],
        tuple(meta["density_bin_ranges"]) if meta["density_bin_ranges"] else None,
        meta["density_window_seconds"], meta["pitch_histogram_window_seconds"])
    return controls[:used].astype(np.float16)


class Batches:
    """Random training windows and fixed validation windows, as ExampleMaker draws them."""

    def __init__(self, meta, train, validation, length, batch, seed):
        self.meta, self.length, self.batch = meta, length, batch
        self.train = [piece for piece in train if len(piece) >= 2]
        # A base's windows come from a corpus drawn evenly, as `python -m training train`.
        corpora = sorted({piece.corpus for piece in self.train})
        self.by_corpus = [[i for i, piece in enumerate(self.train) if piece.corpus == corpus]
                          for corpus in corpora]
        self.rng = np.random.default_rng(seed)
        self.validation = []
        share = validation_share(len(corpora))
        for corpus in corpora:
            taken = 0
            for piece in (piece for piece in validation if piece.corpus == corpus):
                for start in validation_window_starts(len(piece), length):
                    if taken < share:
                        self.validation.append(self.window(piece, start))
                        taken += 1

    def window(self, piece: PackedPiece, start: int):
        """(events [L], control rows [L, C] float16, labels [L] with -100 for
        padding) of the window of `sequence_length + 1` events from `start`."""
        length = self.length
        events = np.zeros(length, np.int64)
        labels = np.full(length, -100, np.int64)
        rows = np.zeros((length, self.meta["control_size"]), np.float16)
        part = piece.events[start:start + length + 1]
        used = max(len(part) - 1, 0)
        events[:used] = part[:-1]
        labels[:used] = part[1:]
        if used:
            rows[:used] = window_controls(self.meta, piece, start, used)
        return events, rows, labels

    def next(self):
        windows = []
        for _ in range(self.batch):
            corpus = self.by_corpus[int(self.rng.integers(len(self.by_corpus)))]
            piece = self.train[corpus[int(self.rng.integers(len(corpus)))]]
            start = random_window_start(self.rng, len(piece), self.length)
            windows.append(self.window(piece, start))
        return [np.stack(parts) for parts in zip(*windows)]


def build_model(torch, input_size, num_classes, layer_sizes, dropout: float = 0.0):
    """The network; `dropout` is applied to each LSTM layer's outputs while
    training (Magenta's `dropout_keep_prob` = 1 - dropout); none at inference."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [input_size, *layer_sizes]
            self.lstms = nn.ModuleList(
                nn.LSTM(sizes[i], sizes[i + 1], batch_first=True) for i in range(len(layer_sizes)))
            self.output = nn.Linear(layer_sizes[-1], num_classes)
            self.dropout = nn.Dropout(dropout)
            with torch.no_grad():
                for lstm in self.lstms:
                    units = lstm.hidden_size
                    lstm.bias_ih_l0.zero_()
                    lstm.bias_hh_l0.zero_()
                    lstm.bias_ih_l0[gate_slice("f", units, TORCH_GATE_ORDER)] = FORGET_BIAS

        def forward(self, x):
            for lstm in self.lstms:
                x, _ = lstm(x)
                x = self.dropout(x)
            return self.output(x)

    return Net()


def load_magenta_weights(torch, net, weights: dict[str, np.ndarray]) -> None:
    """The inverse of `magenta_weights`: continue from an earlier run's weights."""
    with torch.no_grad():
        for layer, lstm in enumerate(net.lstms):
            units = lstm.hidden_size
            kernel = weights[lstm_kernel_name(layer)].astype(np.float32)
            bias = weights[lstm_bias_name(layer)].astype(np.float32).copy()
            bias[gate_slice("f", units)] += FORGET_BIAS
            order = gate_permutation(units, GATE_ORDER, TORCH_GATE_ORDER)
            in_size = kernel.shape[0] - units
            lstm.weight_ih_l0.copy_(torch.from_numpy(kernel[:in_size, order].T.copy()))
            lstm.weight_hh_l0.copy_(torch.from_numpy(kernel[in_size:, order].T.copy()))
            lstm.bias_ih_l0.copy_(torch.from_numpy(bias[order]))
            lstm.bias_hh_l0.zero_()
        net.output.weight.copy_(torch.from_numpy(
            weights[OUTPUT_WEIGHTS].astype(np.float32).T.copy()))
        net.output.bias.copy_(torch.from_numpy(weights[OUTPUT_BIASES].astype(np.float32)))


def read_weights(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, Magenta weights) of an earlier output, NAME.more.npz included."""
    stored = np.load(path, allow_pickle=False)
    weights = {k[2:]: stored[k] for k in stored.files if k.startswith("w:")}
    more = path.with_suffix(".more.npz")
    if more.is_file():
        extra = np.load(more, allow_pickle=False)
        weights.update({k[2:]: extra[k] for k in extra.files if k.startswith("w:")})
    return json.loads(str(stored["meta"])), weights


def magenta_weights(net) -> dict[str, np.ndarray]:
    """The network's weights under Magenta's names and layout (float32)."""
    weights = {}
    for layer, lstm in enumerate(net.lstms):
        units = lstm.hidden_size
        w_ih = lstm.weight_ih_l0.detach().float().cpu().numpy()  # [4u, in], rows i f g o
        w_hh = lstm.weight_hh_l0.detach().float().cpu().numpy()
        bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().float().cpu().numpy()
        order = gate_permutation(units, TORCH_GATE_ORDER, GATE_ORDER)
        kernel = np.concatenate([w_ih[order].T, w_hh[order].T], axis=0)
        magenta_bias = bias[order].copy()
        magenta_bias[gate_slice("f", units)] -= FORGET_BIAS  # the cell adds it itself
        weights[lstm_kernel_name(layer)] = kernel
        weights[lstm_bias_name(layer)] = magenta_bias
    weights[OUTPUT_WEIGHTS] = net.output.weight.detach().float().cpu().numpy().T
    weights[OUTPUT_BIASES] = net.output.bias.detach().float().cpu().numpy()
    return weights


def numpy_nll(weights: dict[str, np.ndarray], inputs: np.ndarray, labels: np.ndarray) -> float:
    """Mean NLL (nats/event) of Magenta's cell, in numpy, over [batch, time] windows."""

    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    x = inputs.astype(np.float64)
    for layer in range(lstm_layer_count(weights)):
        kernel, bias = weights[lstm_kernel_name(layer)], weights[lstm_bias_name(layer)]
        units = bias.shape[0] // len(GATE_ORDER)
        batch, steps, _ = x.shape
        c = np.zeros((batch, units))
        h = np.zeros((batch, units))
        outputs = np.zeros((batch, steps, units))
        for t in range(steps):
            gates = np.concatenate([x[:, t], h], axis=1) @ kernel + bias
            i, j, f, o = np.split(gates, len(GATE_ORDER), axis=1)
            c = c * sigmoid(f + FORGET_BIAS) + sigmoid(i) * np.tanh(j)
            h = np.tanh(c) * sigmoid(o)
            outputs[:, t] = h
        x = outputs
    logits = x @ weights[OUTPUT_WEIGHTS] + weights[OUTPUT_BIASES]
    logits -= logits.max(axis=-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    mask = labels >= 0
    picked = np.take_along_axis(log_probs, np.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    return float(-(picked * mask).sum() / mask.sum())


def self_check(torch) -> None:
    """The weight conversion, on a small random network in float32: torch and
    Magenta's cell in numpy must agree before any GPU time is spent training."""
    net = build_model(torch, 30, 12, [8, 8])
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.3)
    rng = np.random.default_rng(0)
    inputs = rng.random((2, 7, 30)).astype(np.float32)
    labels = rng.integers(0, 12, (2, 7))
    with torch.no_grad():
        logits = net(torch.from_numpy(inputs))
        expected = float(torch.nn.functional.cross_entropy(
            logits.reshape(-1, 12), torch.from_numpy(labels).reshape(-1)))
    converted = magenta_weights(net)
    got = numpy_nll(converted, inputs, labels)
    again = build_model(torch, 30, 12, [8, 8])
    load_magenta_weights(torch, again, converted)
    round_trip = magenta_weights(again)
    if any(not np.allclose(round_trip[k], converted[k], atol=1e-6) for k in converted):
        raise SystemExit("weight conversion check failed: Magenta -> torch -> Magenta differs")
    if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
        raise SystemExit(f"weight conversion check failed: torch {expected}, numpy {got}")
    print(f"weight conversion check: torch {expected:.6f}, Magenta cell {got:.6f}", flush=True)


def train_pack(torch, pack: Path, out_dir: Path, args) -> dict:
    meta, train, validation = load_pack(pack)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    batches = Batches(meta, train, validation, args.length, args.batch, args.seed)
    net = build_model(torch, meta["input_size"], meta["num_classes"], args.layers,
                      args.dropout).to(device)
    history, first_step = [], 0
    if args.init is not None:
        earlier, weights = read_weights(args.init / f"{pack.stem}.npz")
        load_magenta_weights(torch, net, weights)
        history, first_step = earlier.get("history", []), int(earlier.get("steps_run", 0))
        print(f"[{pack.stem}] continuing from {args.init} (step {first_step}, validation NLL "
              f"{earlier.get('best_validation_nll')})", flush=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.learning_rate)
    classes, control_size = meta["num_classes"], meta["control_size"]

    def to_inputs(events, rows):
        events = torch.from_numpy(events).to(device, non_blocking=True)
        one_hot = torch.nn.functional.one_hot(events, classes).float()
        if control_size:
            rows = torch.from_numpy(rows).to(device, non_blocking=True).float()
            return join_inputs(rows, one_hot, torch.cat)
        return one_hot

    def loss_of(events, rows, labels, reduction="mean"):
        logits = net(to_inputs(events, rows))
        labels = torch.from_numpy(labels).to(device, non_blocking=True)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, classes), labels.reshape(-1), ignore_index=-100,
            reduction=reduction)

    def validation_nll():
        if not batches.validation:
            return None
        net.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for begin in range(0, len(batches.validation), args.batch):
                chunk = batches.validation[begin:begin + args.batch]
                events, rows, labels = (np.stack(parts) for parts in zip(*chunk))
                total += float(loss_of(events, rows, labels, reduction="sum"))
                count += int((labels >= 0).sum())
        net.train()
        return total / max(count, 1)

    best, best_state, since_best = None, None, 0
    if history and args.init is not None:
        best = min((p["validation_nll"] for p in history if p["validation_nll"] is not None),
                   default=None)
        best_state = {key: value.detach().clone() for key, value in net.state_dict().items()}
    step, events_seen = first_step, 0
    started = time.perf_counter()
    deadline = started + args.minutes * 60
    name = meta.get("name") or pack.stem
    print(f"[{name}] {meta['train_pieces']} training pieces ({meta['train_events']:,} events, "
          f"augmented x{meta['augmentations']}), {len(batches.validation)} validation windows; "
          f"{'x'.join(map(str, args.layers))} on {device}", flush=True)
    while time.perf_counter() < deadline and step - first_step < args.max_steps:
        events, rows, labels = batches.next()
        loss = loss_of(events, rows, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip_norm)
        optimizer.step()
        step += 1
        events_seen += int((labels >= 0).sum())
        if step % args.eval_every == 0:
            nll = validation_nll()
            train_loss = float(loss.detach())
            history.append({"step": step, "train_loss": train_loss, "validation_nll": nll})
            rate = events_seen / (time.perf_counter() - started)
            print(f"[{name}] step {step}: loss {train_loss:.3f}, validation NLL "
                  f"{'n/a' if nll is None else f'{nll:.3f}'}, {rate:,.0f} events/s", flush=True)
            if nll is None or best is None or nll < best:
                best, since_best = nll, 0
                best_state = {key: value.detach().clone() for key, value in
                              net.state_dict().items()}
            else:
                since_best += 1
                if since_best >= args.patience:
                    print(f"[{name}] no improvement for {args.patience} evaluations; stopping",
                          flush=True)
                    break
    seconds = time.perf_counter() - started
    if best_state is not None:
        net.load_state_dict(best_state)
    best_step = max((p["step"] for p in history if p["validation_nll"] == best), default=step)
    weights = magenta_weights(net)

    check = {}
    if batches.validation:  # the converted weights must compute the same function
        events, rows, labels = (np.stack(parts)[:4, :args.check_length]
                                for parts in zip(*batches.validation[:4]))
        net.eval()
        with torch.no_grad():
            torch_nll = float(loss_of(events, rows, labels))
        one_hot = np.eye(classes, dtype=np.float32)[events]
        inputs = join_inputs(rows.astype(np.float32), one_hot)
        check = {"torch_nll": torch_nll, "magenta_numpy_nll": numpy_nll(weights, inputs, labels),
                 "magenta_numpy_nll_float16": numpy_nll(
                     {k: v.astype(np.float16).astype(np.float32) for k, v in weights.items()},
                     inputs, labels)}
        print(f"[{name}] conversion check: {check}", flush=True)
    result = {
        **{key: meta[key] for key in ("config", "data", "name")},
        "style_names": meta.get("style_names", []),
        "step": best_step, "steps_run": step, "best_validation_nll": best,
        "history": history, "events_seen": events_seen,
        "events_per_second": events_seen / seconds if seconds else 0.0,
        "train_seconds": seconds, "sequence_length": args.length, "batch_size": args.batch,
        "trainer": "training/gpu_train.py (PyTorch cuDNN LSTM)",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__, "conversion_check": check,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # Files come back from the GPU machine only under 16 MiB each: the upper LSTM
    # layers of a big model go into a second file, NAME.more.npz.
    halves = [{}, {}]
    for key, value in weights.items():
        upper = "cell_0/" not in key and key.startswith("rnn/")
        halves[upper and sum(v.size for v in weights.values()) * 2 > 14e6][f"w:{key}"] = (
            value.astype(np.float16))
    np.savez_compressed(out_dir / f"{pack.stem}.npz", meta=np.array(json.dumps(result)),
                        **halves[0])
    if halves[1]:
        np.savez_compressed(out_dir / f"{pack.stem}.more.npz", **halves[1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", nargs="+", required=True, type=Path,
                        help="packs from `python -m training pack`")
    parser.add_argument("--out", required=True, type=Path, help="folder for NAME.npz")
    parser.add_argument("--layers", type=int, nargs="+", default=[512, 512, 512])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--minutes", type=float, default=2.0, help="time budget per pack")
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--clip-norm", type=float, default=3.0)
    parser.add_argument("--check-length", type=int, default=96,
                        help="events per window in the numpy conversion check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout on each LSTM layer's outputs while training (default 0)")
    parser.add_argument("--init", type=Path, default=None,
                        help="folder of an earlier run's NAME.npz files to continue from")
    args = parser.parse_args()

    import torch

    self_check(torch)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    summary = {}
    for pack in args.pack:
        result = train_pack(torch, pack, args.out, args)
        summary[pack.stem] = {key: result[key] for key in (
            "step", "steps_run", "best_validation_nll", "events_per_second", "train_seconds",
            "conversion_check", "device")}
    print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
