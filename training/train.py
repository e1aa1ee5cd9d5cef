"""Training a Performance RNN on a prepared corpus (`python -m training train`).

Each time an example is drawn, the stored NoteSequence is augmented as in
Magenta (a random stretch from `config.stretch_factors`, a random transpose in
`config.transpose_range`, notes pushed out of the MIDI range dropped), encoded
to events, and a random window of `sequence_length + 1` events is taken: the
inputs are the first `sequence_length` rows (controls, for conditioned
configurations, extracted from the window's events as Magenta extracts them
from each performance it cuts out, then the event one-hot), the labels the
next events. Shorter performances are padded and the padding is masked out of
the loss.

Validation uses fixed, unaugmented windows of the validation split. The loss
is the mean negative log-likelihood in nats per event.

Everything lives in `out_dir`: `checkpoints/` (the latest three), `best/` (the
weights with the lowest validation NLL), `logs/` (TensorBoard), `history.json`
and `train_config.json`. Running the same call again resumes from the latest
checkpoint; `steps` is the total target, not a number of extra steps.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from perfrnn.configs import DEFAULT_CONFIG_ID, DEFAULT_CONFIGS, ModelConfig, get_config
from perfrnn.encoding import InputPlan
from perfrnn.errors import PATH, PerfRNNError
from perfrnn.layout import (
    MAX_VALIDATION_WINDOWS,
    random_window_start,
    validation_share,
    validation_window_starts,
)
from perfrnn.metre import COMMON_TIME
from training import base
from training.runs import BEST_DIR, CHECKPOINT_DIR, HISTORY_NAME, LOG_DIR, TRAIN_CONFIG_NAME

DEFAULT_STEPS = 20000
DEFAULT_SEQUENCE_LENGTH = 512
DEFAULT_EVAL_EVERY = 500
DEFAULT_CHECKPOINT_EVERY = 500
DEFAULT_PATIENCE = 10
DEFAULT_SEED = 0
CLOSEST_STYLE_WINDOWS = 16
"""Training windows scored under each parent style to choose a new corpus's style."""

# progress(step, total_steps, loss, events_per_second)
ProgressCallback = Callable[[int, int, float, float], None]

# Fields of ModelConfig that fix the event encoding and model input.
_ENCODING_FIELDS = ("num_velocity_bins", "max_shift_steps", "steps_per_second",
                    "steps_per_quarter",
                    "density_bin_ranges", "density_window_seconds",
                    "pitch_histogram_window_seconds")


@dataclass
class TrainResult:
    """The outcome of `train_model`.

    Attributes:
      steps: The step counter at the end (total over all runs).
      start_step: The step counter when this run began (> 0 when resumed).
      final_validation_nll: Validation NLL (nats/event) at the end; None
        without validation data.
      best_validation_nll: Lowest validation NLL seen (over all runs).
      events_seen: Training events (non-padding labels) in this run.
      events_per_second: Training throughput of this run, after the first
        step (which traces and compiles).
      checkpoint_path: The latest checkpoint written.
      best_checkpoint_path: The checkpoint with the best validation NLL.
      stopped_early: Validation NLL stopped improving for `patience` evaluations.
      interrupted: Stopped by Ctrl-C, SIGTERM or `should_stop`.
      final_train_loss: Training loss of the last step.
      first_train_loss: Training loss of this run's first step (a fine-tuned
        style starts near its parent's loss, a new model near log(classes)).
    """

    steps: int
    start_step: int
    final_validation_nll: float | None
    best_validation_nll: float | None
    events_seen: int
    events_per_second: float
    checkpoint_path: str | None
    best_checkpoint_path: str | None
    stopped_early: bool
    interrupted: bool = False
    final_train_loss: float | None = None
    first_train_loss: float | None = None
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ----- early stopping ---------------------------------------------------------------------


def update_patience(best: float | None, evals_since_best: int,
                    nll: float) -> tuple[float, int, bool]:
    """One validation result into the early-stopping state.

    Returns (best NLL, evaluations since the best, whether `nll` is a new best).
    """
    if best is None or nll < best:
        return nll, 0, True
    return best, evals_since_best + 1, False


def should_stop_early(evals_since_best: int, patience: int | None) -> bool:
    """True when validation has not improved for `patience` evaluations (0/None: never)."""
    return bool(patience) and evals_since_best >= patience


# ----- data -------------------------------------------------------------------------------


class Window(NamedTuple):
    """One training or validation window: the model's inputs as their parts
    (`PerformanceRNN.event_logits`), the next events and which rows count."""

    controls: np.ndarray  # [L, control_size] float32
    events: np.ndarray  # [L] int32: the event each input row one-hot encodes
    labels: np.ndarray  # [L] int32: the event that follows
    mask: np.ndarray  # [L] float32: 1 for real rows, 0 for padding


class ExampleMaker:
    """Draws augmented training windows and fixed validation windows."""

    def __init__(self, config: ModelConfig, sequence_length: int):
        from perfrnn.encodings import encoding_for

        self.config = config
        self.encoding = encoding_for(config)
        self.sequence_length = int(sequence_length)
        self._shift_steps = self.encoding.time_shift_steps()

    def augment(self, sequence, rng: np.random.Generator):
        from note_seq import sequences_lib

        factors = self.config.stretch_factors or (1.0,)
        factor = float(factors[rng.integers(len(factors))])
        if factor != 1.0:
            sequence = sequences_lib.stretch_note_sequence(sequence, factor)
        low, high = self.config.transpose_range
        amount = int(rng.integers(low, high + 1))
        if amount:
            sequence, _ = sequences_lib.transpose_note_sequence(sequence, amount)
        return sequence

    def encode(self, sequence) -> np.ndarray:
        """Event indices of a NoteSequence."""
        return self.encoding.events_from_sequence(sequence)

    def metre(self, sequence):
        """The metre a metric encoding reads the sequence in (None for time-based ones)."""
        if not self.encoding.follows_tempo:
            return None
        from perfrnn.metre import metre_of

        return metre_of(sequence)

    def song(self, sequence):
        """The piece's song plan (`perfrnn.song_form.plan_from_sequence`) for an
        encoding that reads one on a beat; None otherwise or without chords."""
        if not (self.encoding.reads_song and self.encoding.follows_tempo):
            return None
        from perfrnn.song_form import plan_from_sequence

        metre = self.metre(sequence)
        bar_steps = metre.steps_per_bar(self.encoding.steps_per_quarter)
        return plan_from_sequence(
            sequence, lambda seconds: self.encoding.steps_at(sequence, seconds) // bar_steps)

    def window(self, events: np.ndarray, start: int, metre=None,
               style: np.ndarray | None = None, song=None) -> Window:
        """The window of events[start:start + L + 1]: controls [L, C] and event
        indices [L] (the model's inputs: row t is the controls then the
        one-hot of events[t]), labels [L] and mask [L].

        Control signals are extracted from the window's own events (the label
        event included), as Magenta extracts them from each performance its
        data pipeline cuts out. A metric encoding's position inputs count
        from the start of the piece, so the window knows where its bars are;
        `style` is its style input, for a base model and its styles, and
        `song` the piece's chords and sections (`song`).
        """
        length = self.sequence_length
        piece = events[start:start + length + 1]
        used = max(len(piece) - 1, 0)
        width = self.encoding.control_size
        controls = np.zeros((length, width), np.float32)
        inputs = np.zeros(length, np.int32)
        labels = np.zeros(length, np.int32)
        mask = np.zeros(length, np.float32)
        if used:
            if width:
                plan = InputPlan(metre=metre or COMMON_TIME,
                                 style=np.zeros(0, np.float32) if style is None else style,
                                 song=song)
                controls[:used] = self.encoding.training_controls(events, start, used, plan)
            inputs[:used] = piece[:used]
            labels[:used] = piece[1:]
            mask[:used] = 1.0
        return Window(controls, inputs, labels, mask)

    def training_examples(self, sequences: list, seed: int,
                          styles: Sequence[np.ndarray | None] | None = None
                          ) -> Iterator[tuple]:
        """An endless stream of augmented random windows.

        `sequences` is one corpus's list, or, with `styles` (one style input
        per corpus), a list of corpora: each window then comes from a corpus
        drawn uniformly, so a small style counts as much as a big one.
        """
        corpora = list(sequences) if styles is not None else [sequences]
        styles = list(styles) if styles is not None else [None]
        rng = np.random.default_rng(seed)
        while True:
            corpus = int(rng.integers(len(corpora))) if len(corpora) > 1 else 0
            sequence = corpora[corpus][rng.integers(len(corpora[corpus]))]
            augmented = self.augment(sequence, rng)
            events = self.encode(augmented)
            if len(events) < 2:
                continue
            start = random_window_start(rng, len(events), self.sequence_length)
            yield tuple(self.window(events, start, self.metre(sequence), styles[corpus],
                                    self.song(augmented)))

    def validation_windows(self, sequences: list, limit: int = MAX_VALIDATION_WINDOWS,
                           style: np.ndarray | None = None) -> list[tuple]:
        """Consecutive unaugmented windows of each sequence, at most `limit` in all."""
        windows = []
        for sequence in sequences:
            events = self.encode(sequence)
            metre, song = self.metre(sequence), self.song(sequence)
            for start in validation_window_starts(len(events), self.sequence_length):
                if len(windows) >= limit:
                    return windows
                windows.append(self.window(events, start, metre, style, song))
        return windows


# ----- the model's steps ------------------------------------------------------------------


def _masked_loss(model, controls, events, labels, mask):
    import tensorflow as tf

    logits, _ = model.event_logits(controls, events)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    total = tf.reduce_sum(losses * mask)
    count = tf.reduce_sum(mask)
    return total, count


def make_train_step(model, optimizer, jit_compile: bool):
    import tensorflow as tf

    def train_step(controls, events, labels, mask):
        with tf.GradientTape() as tape:
            total, count = _masked_loss(model, controls, events, labels, mask)
            loss = total / tf.maximum(count, 1.0)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss, count

    return tf.function(train_step, jit_compile=jit_compile, autograph=False)


def make_eval_step(model):
    import tensorflow as tf

    @tf.function(autograph=False)
    def eval_step(controls, events, labels, mask):
        return _masked_loss(model, controls, events, labels, mask)

    return eval_step


def validation_nll(eval_step, windows: list[Window], batch_size: int) -> float:
    """Mean NLL (nats per event) of the windows' unmasked labels, in batches of
    `batch_size` (the last one padded with empty windows, so one trace serves)."""
    total = 0.0
    count = 0.0
    for begin in range(0, len(windows), batch_size):
        chunk = list(windows[begin:begin + batch_size])
        empty = Window(*(np.zeros_like(part) for part in chunk[0]))
        chunk += [empty] * (batch_size - len(chunk))
        batch_total, batch_count = eval_step(*(np.stack(parts) for parts in zip(*chunk)))
        total += float(batch_total)
        count += float(batch_count)
    return total / max(count, 1.0)


def closest_style(model, maker, sequences: list, seed: int = 0) -> dict[str, float]:
    """The parent style ({name: 1.0}) under which `model` finds `sequences` most likely.

    `maker` is an `ExampleMaker` of the parent's configuration (see `training.base`).
    """
    names = maker.config.style_names
    rng = np.random.default_rng(seed)
    picks = []  # the same windows are scored under every style
    for index in rng.integers(len(sequences), size=CLOSEST_STYLE_WINDOWS):
        events = maker.encode(sequences[index])
        if len(events) >= 2:
            start = random_window_start(rng, len(events), maker.sequence_length)
            picks.append((events, start, maker.metre(sequences[index])))
    eval_step = make_eval_step(model)
    scores = {}
    for index, name in enumerate(names):
        style = np.eye(len(names), dtype=np.float32)[index]
        windows = [maker.window(events, start, metre, style) for events, start, metre in picks]
        if windows:
            scores[name] = validation_nll(eval_step, windows, CLOSEST_STYLE_WINDOWS)
    if not scores:
        raise PerfRNNError("the corpus has no pieces long enough to fine-tune on")
    return {min(scores, key=scores.get): 1.0}


# ----- checks -----------------------------------------------------------------------------


def _check_positive(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise PerfRNNError(f"{name} must be a whole number > 0, got {value!r}")


def _encoding_of(config: ModelConfig) -> tuple:
    return tuple(getattr(config, name) for name in _ENCODING_FIELDS)


def _check_manifest_config(manifest: dict, config: ModelConfig, messages: list[str]) -> None:
    """Warns (does not refuse) when the corpus was prepared for another encoding.

    The stored NoteSequences do not depend on the event encoding (only the
    event counts in the manifest do), so training can go on; but a band
    corpus (parts mapped onto roles) and a single-part one cannot be swapped.

    Raises:
      PerfRNNError: the corpus's kind does not fit the configuration
        (`training.prepare.kind_problem`).
    """
    from training.prepare import kind_problem

    problem = kind_problem(str(manifest.get("kind")), config)
    if problem:
        raise PerfRNNError(f"this corpus was prepared as kind {manifest.get('kind')!r}: "
                           f"{problem}; prepare it again with a --kind that fits")
    prepared_id = manifest.get("config")
    if (manifest.get("kind") == "drums" and config.is_multitrack and prepared_id in
            DEFAULT_CONFIGS and not DEFAULT_CONFIGS[prepared_id].is_multitrack):
        raise PerfRNNError(f"this kit was prepared for the one-part configuration "
                           f"{prepared_id!r}, so its notes are not in {config.id!r}'s drum part; "
                           f"prepare it again with --config {config.id}")
    if not prepared_id or prepared_id == config.id:
        return
    try:
        prepared = get_config(prepared_id)
    except PerfRNNError:
        messages.append(f"warning: corpus was prepared for unknown configuration "
                        f"{prepared_id!r}; training with {config.id!r}")
        return
    if _encoding_of(prepared) != _encoding_of(config):
        messages.append(
            f"warning: corpus was prepared for {prepared_id!r}, whose event encoding differs "
            f"from {config.id!r}; the event counts in its report do not apply (training "
            "goes on: the stored NoteSequences do not depend on the encoding)")


@dataclass
class Corpus:
    """A prepared corpus, read for training: its style name and its pieces."""

    name: str
    train: list
    validation: list


def _read_corpus(data_dir: Path, config: ModelConfig, say: Callable[[str], None]) -> Corpus:
    """Reads a prepared corpus's manifest and non-empty NoteSequences.

    Raises:
      PerfRNNError: no such prepared corpus, no training music, or one
        prepared for an incompatible kind.
    """
    from training.prepare import corpus_name, read_manifest, read_prepared

    if not data_dir.is_dir():
        raise PerfRNNError(f"data folder {PATH} does not exist; run `python -m training "
                           "prepare` first", path=data_dir)
    manifest = read_manifest(data_dir)
    warnings_before = []
    _check_manifest_config(manifest, config, warnings_before)
    for text in warnings_before:
        say(text)
    train = [sequence for sequence in read_prepared(data_dir, "train") if len(sequence.notes)]
    if not train:
        raise PerfRNNError(f"{PATH} has no training sequences; prepare more music", path=data_dir)
    validation = []
    if (data_dir / "validation.tfrecord").is_file():
        validation = [sequence for sequence in read_prepared(data_dir, "validation")
                      if len(sequence.notes)]
    return Corpus(corpus_name(manifest, data_dir), train, validation)


def _earlier_settings(out_dir: Path) -> dict:
    """The train_config.json of a run folder ({} for a new or unreadable one)."""
    try:
        settings = json.loads((out_dir / TRAIN_CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _load_history(path: Path, up_to_step: int) -> list[dict]:
    if not path.is_file():
        return []
    try:
        points = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(points, list):
        return []
    return [point for point in points
            if isinstance(point, dict) and int(point.get("step", 0)) <= up_to_step]


def _write_json(path: Path, data) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


# ----- training ---------------------------------------------------------------------------


class _StopFlag:
    """Set by SIGTERM/SIGINT while training; the loop checks it after each step."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop right away
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def train_model(
    data_dir: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    config_id: str | None = DEFAULT_CONFIG_ID,
    layer_sizes: Sequence[int] | None = None,
    steps: int = DEFAULT_STEPS,
    batch_size: int | None = None,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    eval_every: int = DEFAULT_EVAL_EVERY,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    patience: int | None = DEFAULT_PATIENCE,
    seed: int = DEFAULT_SEED,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    jit_compile: bool | None = None,
    init_from: str | Path | None = None,
    learning_rate: float | None = None,
    grow_from: str | Path | None = None,
) -> TrainResult:
    """Trains (or resumes training) a Performance RNN on a prepared corpus.

    It reads top to bottom in steps: the run's settings, the data, the model
    and its checkpoints, the validation windows, then the training loop.

    Args:
      data_dir: A folder written by `training.prepare.prepare_corpus`, or
        several: a base model with a style input, each corpus a style named
        by its manifest (`training.base`).
      out_dir: Where checkpoints, logs and history go; a checkpoint there is resumed.
      config_id: A `perfrnn.configs.DEFAULT_CONFIGS` id; None: the run's own
        when resuming, else the parent's when fine-tuning, else the default.
      layer_sizes: LSTM sizes; default the configuration's (512, 512, 512).
      steps: Total number of steps to reach (counting earlier runs).
      batch_size: Default the configuration's (64).
      sequence_length: Events per training window.
      eval_every: Steps between validation runs.
      checkpoint_every: Steps between checkpoints.
      patience: Stop when validation NLL has not improved for this many
        evaluations; None or 0 for never.
      seed: Seeds the weights and the data stream.
      progress: Called after each step with (step, steps, loss, events/s).
      should_stop: Polled after each step; True stops like Ctrl-C.
      log: Receives messages (warnings, evaluation results); default stderr.
      jit_compile: Compile the training step with XLA. None: on a GPU try
        XLA and fall back to a plain tf.function if it does not compile; on
        CPU use a plain tf.function (XLA took ~30 s to compile a 3 x 512
        step and ran it at most ~5% faster on a 2-core CPU).
      init_from: Fine-tune: start from this base run folder or `.mag` bundle
        with a style input (`training.base`), keeping its shape.
      learning_rate: Adam's step size; default the run's own when resuming, else
        the configuration's (1e-3). A resumed run given another takes it and
        keeps it: lower it when validation stalls.
      grow_from: Start a new model of this configuration from an older
        model (a run folder or `.mag`) of the same shape with fewer inputs:
        its weights, and zero weights from the inputs it lacks, so the new
        model begins playing as the old one did (`training.base.grown_weights`).

    Raises:
      PerfRNNError: a problem with the arguments or the data.
    """
    emit = log if log is not None else (lambda text: print(text, file=sys.stderr))
    messages: list[str] = []

    def say(text: str) -> None:
        messages.append(text)
        emit(text)

    # The run's settings: this call's, else the run's own when resuming, else defaults.
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PerfRNNError(f"{PATH} is a file, not a folder", path=out_dir)
    earlier = _earlier_settings(out_dir)
    parent = _parent_of_run(out_dir, earlier, init_from)
    _check_positive("steps", steps)
    _check_positive("sequence length", sequence_length)
    _check_positive("eval every", eval_every)
    _check_positive("checkpoint every", checkpoint_every)
    if patience is not None and (not isinstance(patience, int) or patience < 0):
        raise PerfRNNError(f"patience must be a whole number >= 0, got {patience!r}")
    config = _run_config(earlier, parent, config_id, layer_sizes, batch_size, learning_rate)

    # The data: one corpus, or a base's several (each a style of its style input).
    data_dirs = [Path(data_dir)] if isinstance(data_dir, (str, Path)) else \
        [Path(path) for path in data_dir]
    if not data_dirs:
        raise PerfRNNError("give at least one prepared corpus folder")
    if parent is not None:
        config = _fine_tune_config(config, parent, data_dirs, layer_sizes)
    corpora = [_read_corpus(path, config, say) for path in data_dirs]
    if parent is None and len(corpora) > 1:
        config = config.replace(style_names=base.style_names_of(
            [corpus.name for corpus in corpora], config))
    out_dir.mkdir(parents=True, exist_ok=True)
    run_settings = _run_settings(out_dir, earlier, config, data_dirs, sequence_length)

    # The model: new, or the parent's weights with the style input the corpus gets.
    from perfrnn.model import PerformanceRNN

    maker = ExampleMaker(config, sequence_length)
    encoding = maker.encoding
    model = PerformanceRNN(encoding.input_size, encoding.num_classes,
                           config.rnn_layer_sizes, seed=seed)
    if grow_from is not None and parent is None:
        if earlier.get("grown_from", str(grow_from)) != str(grow_from):
            raise PerfRNNError(f"{PATH} holds a model grown from {earlier['grown_from']}; use "
                               "another --out", path=out_dir)
        model.set_weights(base.grown_weights(base.read_parent(grow_from), config))
        run_settings["grown_from"] = str(grow_from)
        say(f"grown from {grow_from}: new inputs start at zero weight")
    if parent is not None:
        model.set_weights(parent.weights)  # a checkpoint of this run, if any, replaces them
        run_settings.update(parent=parent.source, parent_provenance=parent.provenance)
        mix = _fine_tune_style(model, maker, config, corpora[0], earlier, seed)
        if mix is not None:
            run_settings["style_mix"] = mix
        say(f"fine-tuning {base.describe(parent)} on {corpora[0].name!r}" + (
            "" if mix is None else " with style input " + ", ".join(
                f"{name} {weight:g}" for name, weight in mix.items())))
    styles = [encoding.style_vector(run_settings["style_mix"]) if "style_mix" in run_settings
              else np.eye(len(corpora), dtype=np.float32)[index] if len(corpora) > 1 else None
              for index in range(len(corpora))]
    _write_json(out_dir / TRAIN_CONFIG_NAME, run_settings)

    # Checkpoints: resume where the run stopped, with this call's learning rate.
    checkpoints = RunCheckpoints(model, config, out_dir)
    start_step = checkpoints.restore()
    if start_step:
        say(f"resuming from step {start_step} ({checkpoints.latest})")
    history_path = out_dir / HISTORY_NAME
    history = _load_history(history_path, start_step)
    best, since_best = checkpoints.best, checkpoints.since_best

    # Validation: the same windows every time, each style's share alike.
    share = validation_share(len(corpora))
    validation = {corpus.name: windows for corpus, style in zip(corpora, styles)
                  if (windows := maker.validation_windows(corpus.validation, share, style))}
    if not validation:
        say("no validation data: validation and early stopping are skipped")

    result = TrainResult(steps=start_step, start_step=start_step, final_validation_nll=None,
                         best_validation_nll=best, events_seen=0, events_per_second=0.0,
                         checkpoint_path=checkpoints.latest,
                         best_checkpoint_path=checkpoints.best_latest,
                         stopped_early=False, messages=messages)
    if start_step >= steps:
        say(f"already at step {start_step} of {steps}; nothing to do")
        return result

    # The training loop.
    import tensorflow as tf

    batches = iter(_training_batches(maker, corpora, styles, seed * 1_000_003 + start_step,
                                     config.batch_size))
    eval_step = make_eval_step(model)
    writer = tf.summary.create_file_writer(str(out_dir / LOG_DIR))
    step, loss_value, events_seen, timed_events = start_step, float("nan"), 0, 0
    train_step, started = None, None
    last_saved = start_step if checkpoints.latest else None
    with _StopFlag() as stop_flag:
        while step < steps:
            batch = next(batches)
            if train_step is None:
                train_step, (loss, count) = _first_step(model, checkpoints.optimizer,
                                                        jit_compile, batch, say)
                result.first_train_loss = float(loss)
            else:
                loss, count = train_step(*batch)
            step = checkpoints.next_step()
            loss_value = float(loss)
            events_seen += int(count)
            if started is None:  # the rate leaves out the first step: tracing, compiling
                started = time.perf_counter()
            else:
                timed_events += int(count)
            elapsed = time.perf_counter() - started
            rate = timed_events / elapsed if elapsed > 0 else 0.0
            if not math.isfinite(loss_value):  # no checkpoint of broken weights
                writer.close()
                raise PerfRNNError(f"training loss became {loss_value} at step {step}; the "
                                   f"last good checkpoint is {PATH}",
                                   path=result.checkpoint_path or out_dir)
            _scalar(writer, "train_loss", loss_value, step)
            if progress is not None:
                progress(step, steps, loss_value, rate)

            stop_early = False
            if step % eval_every == 0 or step == steps:
                point = {"step": step, "train_loss": loss_value, "validation_nll": None}
                if validation:
                    nll, by_style = _validate(eval_step, validation, config.batch_size)
                    best, since_best, improved = update_patience(best, since_best, nll)
                    checkpoints.record_best(best, since_best)
                    if improved:
                        result.best_checkpoint_path = checkpoints.save_best(step)
                    result.final_validation_nll, result.best_validation_nll = nll, best
                    _scalar(writer, "validation_nll", nll, step)
                    point["validation_nll"] = nll
                    if config.has_style_input and parent is None:  # a base: each style's own
                        point["style_validation_nll"] = by_style
                    styles_text = "" if len(by_style) < 2 else " (" + ", ".join(
                        f"{name} {value:.3f}" for name, value in by_style.items()) + ")"
                    emit(f"step {step}: validation NLL {nll:.4f} nats/event "
                         f"(best {best:.4f}){styles_text}")
                    stop_early = should_stop_early(since_best, patience)
                history.append(point)
                _write_json(history_path, history)
            if step % checkpoint_every == 0:
                result.checkpoint_path, last_saved = checkpoints.save(), step
            if stop_early:
                result.stopped_early = True
                say(f"validation NLL has not improved for {patience} evaluations; stopping "
                    f"at step {step}")
                break
            if stop_flag.signal_name or (should_stop is not None and should_stop()):
                result.interrupted = True
                say(f"stopped by {stop_flag.signal_name or 'request'} at step {step}")
                break
        if last_saved != step:
            result.checkpoint_path = checkpoints.save()
    writer.flush()
    writer.close()
    elapsed = time.perf_counter() - started if started is not None else 0.0
    result.steps = step
    result.events_seen = events_seen
    result.events_per_second = timed_events / elapsed if elapsed > 0 else 0.0
    result.final_train_loss = loss_value
    return result


# ----- the steps of train_model ------------------------------------------------------------


def _parent_of_run(out_dir: Path, earlier: dict, init_from: str | Path | None):
    """The model a run fine-tunes (`training.base.Parent`), or None: the one asked
    for, or the one a resumed run started from.

    Raises:
      PerfRNNError: the run folder holds a model started from something else.
    """
    if init_from is None and earlier.get("parent"):  # resuming a fine-tuned style
        init_from = earlier["parent"]
    elif earlier and str(init_from) != str(earlier.get("parent")):
        started = f"fine-tuned from {earlier['parent']}" if earlier.get("parent") else \
            "trained from scratch"
        raise PerfRNNError(f"{PATH} holds a model {started}; use another --out to start from "
                           "something else", path=out_dir)
    return base.read_parent(init_from) if init_from is not None else None


def _run_config(earlier: dict, parent, config_id: str | None, layer_sizes, batch_size,
                learning_rate) -> ModelConfig:
    """The configuration with this call's sizes, batch and learning rate, each
    checked; a resumed run keeps its configuration and learning rate unless told."""
    if config_id is None:  # the run's own, else its parent's, else the default
        config_id = earlier.get("config") or (
            parent.config.id if parent is not None else DEFAULT_CONFIG_ID)
    config = get_config(config_id)
    _check_positive("batch size", batch_size, allow_none=True)
    if layer_sizes is not None:
        layer_sizes = tuple(layer_sizes)
        if not layer_sizes or any(not isinstance(size, (int, np.integer)) or size <= 0
                                  for size in layer_sizes):
            raise PerfRNNError(f"layer sizes must be whole numbers > 0, got {list(layer_sizes)}")
        config = config.replace(rnn_layer_sizes=layer_sizes)
    if batch_size is not None:
        config = config.replace(batch_size=int(batch_size))
    if learning_rate is None:  # a resumed run keeps the rate it was last given
        learning_rate = earlier.get("learning_rate")
    if learning_rate is not None:
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < 1):
            raise PerfRNNError(f"learning rate must be above 0 and below 1, got {learning_rate!r}")
        config = config.replace(learning_rate=float(learning_rate))
    return config


def _fine_tune_config(config: ModelConfig, parent, data_dirs: list[Path],
                      layer_sizes) -> ModelConfig:
    """A fine-tune's configuration: the parent's shape and styles, this run's
    batch and learning rate. It trains on one corpus with the parent's sizes."""
    if len(data_dirs) > 1:
        raise PerfRNNError("fine-tune on one corpus at a time; a base model is trained "
                           "on several corpora without --init-from")
    if layer_sizes is not None and tuple(layer_sizes) != parent.config.rnn_layer_sizes:
        raise PerfRNNError(f"a fine-tuned style keeps its parent's layer sizes "
                           f"{list(parent.config.rnn_layer_sizes)}; leave --layers out")
    return base.parent_config(parent, config.id).replace(
        batch_size=config.batch_size, learning_rate=config.learning_rate)


def _run_settings(out_dir: Path, earlier: dict, config: ModelConfig, data_dirs: list[Path],
                  sequence_length: int) -> dict:
    """What train_config.json records of the run.

    Raises:
      PerfRNNError: the run folder holds a model of another shape.
    """
    settings = {"data": str(data_dirs[0]) if len(data_dirs) == 1 else
                [str(path) for path in data_dirs],
                "config": config.id,
                "layer_sizes": list(config.rnn_layer_sizes),
                "style_names": list(config.style_names),
                "sequence_length": int(sequence_length), "batch_size": int(config.batch_size),
                "learning_rate": config.learning_rate}
    for key in ("config", "layer_sizes", "style_names"):
        if key in earlier and earlier[key] != settings[key]:
            raise PerfRNNError(
                f"{PATH} holds a model trained with {key} {earlier[key]}, not {settings[key]}; use "
                "another --out or the same settings", path=out_dir)
    return settings


def _fine_tune_style(model, maker: ExampleMaker, config: ModelConfig, corpus: Corpus,
                     earlier: dict, seed: int) -> dict | None:
    """The style input a fine-tune trains with ({style: weight}; None for a
    parent without one): the one a resumed run chose, else the corpus's own
    style when the parent knows it, else the parent style nearest the corpus."""
    if not config.has_style_input:
        return None
    if isinstance(earlier.get("style_mix"), dict):  # resuming: the style chosen first
        return earlier["style_mix"]
    if corpus.name in config.style_names:
        return {corpus.name: 1.0}
    return closest_style(model, maker, corpus.train, seed)


class RunCheckpoints:
    """A run's optimizer, step counter, early-stopping state and the two
    checkpoint folders: the latest few (to resume) and the best (to export)."""

    def __init__(self, model, config: ModelConfig, out_dir: Path):
        import tensorflow as tf

        self.model = model
        self.learning_rate = config.learning_rate
        self.optimizer = tf.keras.optimizers.Adam(config.learning_rate,
                                                  global_clipnorm=config.clip_norm)
        self._step = tf.Variable(0, dtype=tf.int64, name="step")
        self._best = tf.Variable(math.inf, dtype=tf.float64, name="best_validation_nll")
        self._since_best = tf.Variable(0, dtype=tf.int64, name="evals_since_best")
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer,
                                               step=self._step,
                                               best_validation_nll=self._best,
                                               evals_since_best=self._since_best)
        self._manager = tf.train.CheckpointManager(self._checkpoint,
                                                   str(out_dir / CHECKPOINT_DIR), max_to_keep=3)
        self._best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model, step=self._step), str(out_dir / BEST_DIR),
            max_to_keep=1)

    @property
    def latest(self) -> str | None:
        return self._manager.latest_checkpoint

    @property
    def best_latest(self) -> str | None:
        return self._best_manager.latest_checkpoint

    @property
    def best(self) -> float | None:
        value = float(self._best.numpy())
        return None if math.isinf(value) else value

    @property
    def since_best(self) -> int:
        return int(self._since_best.numpy())

    def restore(self) -> int:
        """Restores the latest checkpoint, if any, and sets this run's learning
        rate; returns the step it was at (0 for a new run)."""
        import tensorflow as tf

        # Create the optimizer's slots before restoring so that they are restored at once.
        self.optimizer.build(self.model.trainable_variables)
        if self.latest:
            try:
                self._checkpoint.restore(self.latest).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as error:
                raise PerfRNNError(f"{str(error).splitlines()[0]}; use another --out",
                                   path=self.latest, action="resume from") from None
        self.optimizer.learning_rate.assign(self.learning_rate)  # a resumed run takes it
        return int(self._step.numpy())

    def next_step(self) -> int:
        """Counts a training step; returns the new step number."""
        return int(self._step.assign_add(1).numpy())

    def record_best(self, best: float, since_best: int) -> None:
        """Keeps the early-stopping state in the next checkpoint."""
        self._best.assign(best)
        self._since_best.assign(since_best)

    def save(self) -> str:
        return self._manager.save(checkpoint_number=int(self._step.numpy()))

    def save_best(self, step: int) -> str:
        return self._best_manager.save(checkpoint_number=step)


def _training_batches(maker: ExampleMaker, corpora: list[Corpus], styles: list,
                      seed: int, batch_size: int):
    """An endless tf.data stream of batches of random training windows."""
    import tensorflow as tf

    length, control_size = maker.sequence_length, maker.encoding.control_size
    return tf.data.Dataset.from_generator(
        lambda: maker.training_examples([corpus.train for corpus in corpora], seed, styles),
        output_signature=(
            tf.TensorSpec((length, control_size), tf.float32),
            tf.TensorSpec((length,), tf.int32),
            tf.TensorSpec((length,), tf.int32),
            tf.TensorSpec((length,), tf.float32),
        ),
    ).batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _validate(eval_step, validation: dict[str, list[Window]],
              batch_size: int) -> tuple[float, dict[str, float]]:
    """Mean validation NLL (nats/event) over the styles, each counting the same,
    and each style's own."""
    by_style = {name: validation_nll(eval_step, windows, batch_size)
                for name, windows in validation.items()}
    return float(np.mean(list(by_style.values()))), by_style


def _scalar(writer, tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar, written without needing the tensorboard package."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    with writer.as_default():
        tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                         metadata=metadata.SerializeToString())


def _first_step(model, optimizer, jit_compile, batch, say):
    """Builds the training step, with XLA if asked (None: if it compiles), and runs it once."""
    import tensorflow as tf

    if jit_compile is None:
        jit_compile = None if tf.config.list_physical_devices("GPU") else False
    if jit_compile is not False:
        step = make_train_step(model, optimizer, jit_compile=True)
        try:
            return step, step(*batch)
        except (tf.errors.OpError, ValueError, TypeError, NotImplementedError) as error:
            if jit_compile:
                raise PerfRNNError(f"the training step does not compile with XLA "
                                   f"({str(error).splitlines()[0]})") from None
            say("XLA compilation failed; using a plain tf.function")
    step = make_train_step(model, optimizer, jit_compile=False)
    return step, step(*batch)
