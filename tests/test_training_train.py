"""Tests for `python -m training train` and training.train.train_model.

A tiny corpus of scales and arpeggios written with pretty_midi is prepared
with `prepare_corpus`; models are tiny (2 x 16 LSTM, windows of 32 events).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from perfrnn.configs import get_config
from tests.conftest import poll_until
from training.__main__ import main
from training.prepare import prepare_corpus
from training.train import (
    ExampleMaker,
    should_stop_early,
    train_model,
    update_patience,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(layer_sizes=[16, 16], sequence_length=32, batch_size=4, log=lambda text: None)


def _write_midi(path: Path, pitches: list[int], repeats: int = 6) -> None:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    time_now = 0.0
    for _ in range(repeats):
        for pitch in pitches:
            piano.notes.append(pretty_midi.Note(velocity=80, pitch=pitch,
                                                start=time_now, end=time_now + 0.2))
            time_now += 0.25
    midi.instruments.append(piano)
    midi.write(str(path))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    music = root / "music"
    music.mkdir()
    _write_midi(music / "c_major.mid", [60, 62, 64, 65, 67, 69, 71, 72])
    _write_midi(music / "g_major.mid", [67, 69, 71, 72, 74, 76, 78, 79])
    _write_midi(music / "arpeggio.mid", [60, 64, 67, 72, 67, 64])
    _write_midi(music / "d_minor.mid", [62, 65, 69, 74, 69, 65])
    out = root / "data"
    prepare_corpus("tiny", [music], out, validation_fraction=0.25, seed=0)
    return out


@pytest.mark.slow
def test_loss_goes_down(corpus, tmp_path):
    losses = []
    result = train_model(corpus, tmp_path / "run", steps=60, eval_every=30,
                         checkpoint_every=30, patience=0, seed=1,
                         progress=lambda step, total, loss, rate: losses.append(loss), **TINY)
    assert result.steps == 60
    assert len(losses) == 60
    assert losses[0] > 5.0  # about ln(388) at the start
    assert np.mean(losses[-10:]) < losses[0] - 1.0
    assert np.mean(losses[-10:]) < math.log(388) - 1.0
    assert result.events_per_second > 0
    assert result.best_validation_nll is not None and result.best_validation_nll < math.log(388)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [point["step"] for point in history] == [30, 60]
    import tensorflow as tf

    tags = set()
    for events_file in (tmp_path / "run" / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"train_loss", "validation_nll"} <= tags
    assert (tmp_path / "run" / "best" / "checkpoint").is_file()


@pytest.mark.slow
def test_resume_continues_the_step_counter(corpus, tmp_path):
    import tensorflow as tf

    out = tmp_path / "run"
    first = train_model(corpus, out, steps=10, eval_every=5, checkpoint_every=100,
                        patience=0, **TINY)
    assert first.steps == 10 and first.start_step == 0
    saved = tf.train.load_checkpoint(first.checkpoint_path)
    kernel_key = next(key for key in saved.get_variable_to_shape_map()
                      if key.startswith("model/kernels/0/") and "OPTIMIZER" not in key)
    saved_kernel = saved.get_tensor(kernel_key)

    steps_seen = []
    second = train_model(corpus, out, steps=20, eval_every=5, checkpoint_every=100,
                         patience=0, progress=lambda step, *_: steps_seen.append(step), **TINY)
    assert second.start_step == 10
    assert steps_seen[0] == 11 and steps_seen[-1] == 20
    assert second.steps == 20
    history = json.loads((out / "history.json").read_text())
    steps = [point["step"] for point in history]
    assert steps == [5, 10, 15, 20]
    final = tf.train.load_checkpoint(second.checkpoint_path)
    assert int(final.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 20
    # The optimizer's state was restored too: Adam's step count went on from 10.
    assert int(final.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == 20

    # The checkpoint written at step 10 holds the weights the second run started from.
    from perfrnn.model import PerformanceRNN
    from perfrnn.performance_encoding import PerformanceEncoding

    encoding = PerformanceEncoding(get_config("performance_with_dynamics"))
    fresh = PerformanceRNN(encoding.input_size, encoding.num_classes, [16, 16], seed=99)
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=fresh, step=step).restore(first.checkpoint_path).expect_partial()
    assert int(step.numpy()) == 10
    np.testing.assert_array_equal(fresh.kernels[0].numpy(), saved_kernel)

    # Already done: nothing happens.
    third = train_model(corpus, out, steps=20, **TINY)
    assert third.steps == 20 and third.events_seen == 0


@pytest.mark.slow
def test_a_resumed_run_takes_a_new_learning_rate(corpus, tmp_path):
    import tensorflow as tf

    def kernel(result):
        saved = tf.train.load_checkpoint(result.checkpoint_path)
        return saved.get_tensor(next(key for key in saved.get_variable_to_shape_map()
                                     if key.startswith("model/kernels/0/")
                                     and "OPTIMIZER" not in key))

    out = tmp_path / "run"
    first = train_model(corpus, out, steps=4, eval_every=100, checkpoint_every=100,
                        patience=0, **TINY)
    shutil.copytree(out, tmp_path / "copy")
    moved = train_model(corpus, tmp_path / "copy", steps=8, eval_every=100,
                        checkpoint_every=100, patience=0, **TINY)
    settings = json.loads((out / "train_config.json").read_text())
    assert settings["learning_rate"] == 1e-3  # the configuration's
    slow = train_model(corpus, out, steps=8, eval_every=100, checkpoint_every=100,
                       patience=0, learning_rate=1e-9, **TINY)
    assert slow.start_step == 4
    assert json.loads((out / "train_config.json").read_text())["learning_rate"] == 1e-9
    # resumed again without a rate, it keeps the one it was given
    again = train_model(corpus, out, steps=10, eval_every=100, checkpoint_every=100,
                        patience=0, **TINY)
    assert json.loads((out / "train_config.json").read_text())["learning_rate"] == 1e-9
    assert np.abs(kernel(again) - kernel(first)).max() < 1e-6
    # Four Adam steps of 1e-9 barely move a weight; four more of 1e-3 move them by ~1e-3.
    assert np.abs(kernel(slow) - kernel(first)).max() < 1e-6
    assert np.abs(kernel(moved) - kernel(first)).max() > 1e-4


@pytest.mark.slow
def test_should_stop_saves_a_checkpoint(corpus, tmp_path):
    calls = []
    result = train_model(corpus, tmp_path / "run", steps=1000, eval_every=1000,
                         checkpoint_every=1000, patience=0,
                         should_stop=lambda: len(calls) >= 3 or calls.append(1) is not None,
                         **TINY)
    assert result.interrupted
    assert result.steps == 4
    assert result.checkpoint_path.endswith("ckpt-4")


def test_patience_helpers():
    best, since, improved = update_patience(None, 0, 3.0)
    assert (best, since, improved) == (3.0, 0, True)
    best, since, improved = update_patience(best, since, 3.5)
    assert (best, since, improved) == (3.0, 1, False)
    assert should_stop_early(since, 1)
    assert not should_stop_early(since, 2)
    assert not should_stop_early(5, 0) and not should_stop_early(5, None)
    best, since, improved = update_patience(best, since, 2.0)
    assert (best, since, improved) == (2.0, 0, True)


@pytest.mark.slow
def test_early_stopping_with_a_learning_rate_of_zero(corpus, tmp_path, monkeypatch):
    from training import train as train_module

    original = train_module.get_config
    monkeypatch.setattr(train_module, "get_config",
                        lambda name: original(name).replace(learning_rate=0.0))
    result = train_model(corpus, tmp_path / "run", steps=100, eval_every=2,
                         checkpoint_every=100, patience=1, **TINY)
    assert result.stopped_early
    assert result.steps == 4  # best at step 2, no better at step 4


def test_conditioned_windows_match_the_encoding(corpus):
    from training.prepare import read_prepared

    config = get_config("multiconditioned_performance_with_dynamics")
    maker = ExampleMaker(config, 32)
    sequence = read_prepared(corpus, "train")[0]
    events = maker.encode(sequence)
    controls, inputs, labels, mask = maker.window(events, 5)
    piece = events[5:38]
    values = maker.encoding.control_values(maker.encoding.performance_from_events(piece))
    rows = maker.encoding.inputs_from_events(piece[:-1], values)
    width = maker.encoding.control_size
    np.testing.assert_array_equal(controls, rows[:, :width])
    np.testing.assert_array_equal(inputs, piece[:-1])
    np.testing.assert_array_equal(np.argmax(rows[:, width:], axis=1), inputs)
    assert controls.any()
    np.testing.assert_array_equal(labels, events[6:38])
    assert mask.sum() == 32
    # A window running past the end is padded and masked.
    controls, inputs, labels, mask = maker.window(events, len(events) - 10)
    assert mask.sum() == 9 and not controls[9:].any() and not inputs[9:].any()


def test_the_event_path_computes_what_the_dense_inputs_do(corpus):
    """Training's gathered event rows give the logits of the one-hot inputs."""
    from perfrnn.model import PerformanceRNN
    from training.prepare import read_prepared

    config = get_config("multiconditioned_performance_with_dynamics")
    maker = ExampleMaker(config, 32)
    events = maker.encode(read_prepared(corpus, "train")[0])
    controls, inputs, _, _ = maker.window(events, 3)
    model = PerformanceRNN(maker.encoding.input_size, maker.encoding.num_classes, [16, 8],
                           seed=4)
    dense = np.concatenate([controls, np.eye(maker.encoding.num_classes)[inputs]], axis=1)
    np.testing.assert_allclose(model.event_logits(controls[None], inputs[None])[0].numpy(),
                               model.sequence_logits(dense[None])[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--data", "{tmp}/missing"], "does not exist"),
    (["--data", "{tmp}"], "no manifest.json"),
    (["--data", "{corpus}", "--config", "nope"], "unknown model configuration"),
    (["--data", "{corpus}", "--steps", "0"], "steps must be"),
    (["--data", "{corpus}", "--layers", "0"], "layer sizes"),
    (["--data", "{corpus}", "--learning-rate", "0"], "learning rate must be"),
])
def test_errors(corpus, tmp_path, capsys, argv, message):
    argv = [part.format(tmp=tmp_path, corpus=corpus) for part in argv]
    status = main(["train", *argv, "--out", str(tmp_path / "run")])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error


def test_no_training_sequences(tmp_path, capsys, corpus):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text((corpus / "manifest.json").read_text())
    (empty / "train.tfrecord").write_bytes(b"")
    assert main(["train", "--data", str(empty), "--out", str(tmp_path / "run")]) == 2
    assert "no training sequences" in capsys.readouterr().err


@pytest.mark.slow
def test_other_encoding_warns(corpus, tmp_path):
    messages = []
    result = train_model(corpus, tmp_path / "run",
                         config_id="multiconditioned_performance_with_dynamics", steps=2,
                         patience=0, **{**TINY, "log": messages.append})
    assert any("encoding differs" in text for text in messages)
    assert result.steps == 2 and math.isfinite(result.final_train_loss)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_and_resumes(corpus, tmp_path, signum):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "training", "train", "--data", str(corpus),
               "--out", str(out), "--layers", "16", "16", "--sequence-length", "32",
               "--batch-size", "4", "--steps", "100000", "--checkpoint-every", "5",
               "--eval-every", "100000", "--patience", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        def saved_checkpoints():
            saved = list((out / "checkpoints").glob("ckpt-*.index"))
            if not saved:
                assert process.poll() is None, process.communicate()[1]
            return saved

        poll_until(saved_checkpoints, 60, "a first checkpoint")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    saved = sorted(int(path.stem.split("-")[1])
                   for path in (out / "checkpoints").glob("ckpt-*.index"))
    stopped_at = saved[-1]
    assert stopped_at >= 5
    assert f"stopped by {signal.Signals(signum).name} at step {stopped_at}" in stderr
    resumed = train_model(corpus, out, steps=stopped_at + 2, eval_every=100000,
                          checkpoint_every=100000, patience=0, **TINY)
    assert resumed.start_step == stopped_at and resumed.steps == stopped_at + 2


@pytest.mark.slow
def test_the_training_step_compiles_with_xla(corpus, tmp_path):
    result = train_model(corpus, tmp_path / "run", steps=2, eval_every=2, patience=0,
                         jit_compile=True, **TINY)
    assert result.steps == 2 and math.isfinite(result.final_train_loss)


@pytest.mark.slow
def test_resuming_with_other_layers_is_refused(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train_model(corpus, out, steps=1, patience=0, **TINY)
    status = main(["train", "--data", str(corpus), "--out", str(out), "--layers", "8",
                   "--sequence-length", "32", "--batch-size", "4", "--steps", "2"])
    assert status == 2
    assert "layer_sizes [16, 16]" in capsys.readouterr().err
