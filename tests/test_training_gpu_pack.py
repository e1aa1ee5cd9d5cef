"""The GPU path without TensorFlow there: pack a corpus, train elsewhere, import the weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from conftest import magenta_reference_path

from perfrnn.configs import get_config
from perfrnn.encodings import encoding_for
from perfrnn.errors import PerfRNNError
from perfrnn.metre import COMMON_TIME
from perfrnn.model import PerformanceRNN
from training import gpu_train
from training.__main__ import main as training_main
from training.evaluate import held_out_nll
from training.pack import control_ones, encoding_meta
from training.prepare import prepare_corpus
from training.runs import load_run
from training.train import ExampleMaker

REPO = Path(__file__).resolve().parents[1]
CONDITIONED = "multiconditioned_performance_with_dynamics"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    music = root / "music"
    music.mkdir()
    rng = np.random.default_rng(1)
    for index in range(4):
        midi = pretty_midi.PrettyMIDI(initial_tempo=120)
        piano = pretty_midi.Instrument(program=0)
        for step in range(80):
            pitch = int(60 + rng.choice([0, 2, 4, 5, 7, 9, 11]))
            piano.notes.append(pretty_midi.Note(velocity=int(rng.integers(40, 100)),
                                                pitch=pitch, start=step * 0.2,
                                                end=step * 0.2 + 0.15))
        midi.instruments.append(piano)
        midi.write(str(music / f"piece{index}.mid"))
    prepare_corpus("packed", [music], root / "data", config_id=CONDITIONED,
                   validation_fraction=0.25)
    return root / "data"


def test_pack_holds_augmented_training_pieces_and_plain_validation(corpus, tmp_path):
    out = tmp_path / "packed.npz"
    assert training_main(["pack", "--data", str(corpus), "--out", str(out), "--config",
                          CONDITIONED, "--augmentations", "3"]) == 0
    stored = np.load(out)
    meta = json.loads(str(stored["meta"]))
    assert meta["train_pieces"] == 9 and meta["validation_pieces"] == 1
    assert meta["control_size"] == 20 and meta["input_size"] == 408
    offsets = stored["train_offsets"]
    pieces = [stored["train_events"][offsets[i]:offsets[i + 1]] for i in range(9)]
    # the first copy of each piece is unaugmented, the others differ from it
    assert not np.array_equal(pieces[0], pieces[1]) or not np.array_equal(pieces[0], pieces[2])
    assert stored["train_events"].dtype == np.int16
    assert stored["train_events"].max() < 388


def fake_gpu_weights(path: Path, data: Path, config_id: str, layers=(16, 16)) -> PerformanceRNN:
    """What training/gpu_train.py writes, made from a TensorFlow model."""
    config = get_config(config_id)
    encoding = encoding_for(config)
    model = PerformanceRNN(encoding.input_size, encoding.num_classes, layers, seed=4)
    meta = {"config": config_id, "data": str(data), "name": "packed", "step": 120,
            "history": [{"step": 60, "train_loss": 4.0, "validation_nll": 4.5},
                        {"step": 120, "train_loss": 3.0, "validation_nll": 3.9}],
            "sequence_length": 64, "batch_size": 8, "trainer": "test", "device": "none"}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)),
                        **{f"w:{k}": v.astype(np.float16) for k, v in model.get_weights().items()})
    return model


def test_imported_weights_become_a_run_that_evaluates_and_exports(corpus, tmp_path):
    weights = tmp_path / "packed.npz"
    model = fake_gpu_weights(weights, corpus, CONDITIONED)
    run = tmp_path / "run"
    assert training_main(["import-weights", "--weights", str(weights), "--out", str(run)]) == 0
    loaded = load_run(run)
    assert loaded.step == 120 and loaded.config.id == CONDITIONED
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.model.get_weights()[name],
                                      value.astype(np.float16).astype(np.float32))
    assert loaded.best_validation_nll == 3.9
    assert held_out_nll(loaded, []) is None
    bundle = tmp_path / "packed.mag"
    assert training_main(["export", "--run", str(run), "--out", str(bundle)]) == 0
    from perfrnn.bundle import read_bundle

    assert read_bundle(bundle).metadata.training["steps"] == 120


def test_weights_for_another_configuration_are_refused(corpus, tmp_path):
    weights = tmp_path / "w.npz"
    fake_gpu_weights(weights, corpus, "performance_with_dynamics")
    data = np.load(weights)
    meta = json.loads(str(data["meta"]))
    meta["config"] = CONDITIONED
    np.savez(weights, meta=np.array(json.dumps(meta)),
             **{name: data[name] for name in data.files if name != "meta"})
    from training.pack import import_weights

    with pytest.raises(PerfRNNError, match="does not fit"):
        import_weights(weights, tmp_path / "run")


def test_gpu_trainer_conversion_matches_magentas_cell(corpus, tmp_path):
    """Runs only where PyTorch is installed (the GPU machines); CI has no PyTorch."""
    torch = pytest.importorskip("torch")
    net = gpu_train.build_model(torch, 30, 12, [8, 8])
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.3)
    inputs = np.random.default_rng(0).random((2, 7, 30)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 12, (2, 7))
    logits = net(torch.from_numpy(inputs))
    torch_nll = float(torch.nn.functional.cross_entropy(
        logits.reshape(-1, 12), torch.from_numpy(labels).reshape(-1)))
    numpy_nll = gpu_train.numpy_nll(gpu_train.magenta_weights(net), inputs, labels)
    assert numpy_nll == pytest.approx(torch_nll, rel=1e-5)


def test_typical_controls_of_the_corpus(corpus):
    from training.export import corpus_controls, training_pieces

    pieces = training_pieces(corpus)
    controls = corpus_controls(get_config(CONDITIONED), pieces)
    assert controls["key"] == "C"
    assert controls["notes_per_second"] == pytest.approx(80 / 15.95, rel=0.02)
    assert corpus_controls(get_config("performance_with_dynamics"), pieces) == {}


def test_a_request_without_controls_gets_the_styles_typical_ones(conditioned_bundle):
    import dataclasses

    from perfrnn.options import GenerationOptions, pitch_histogram_for_key
    from perfrnn.sampler import Sampler

    bundle = dataclasses.replace(conditioned_bundle, metadata=dataclasses.replace(
        conditioned_bundle.metadata, default_controls={"notes_per_second": 3.0, "key": "Am"}))
    sampler = Sampler(bundle)
    implicit = sampler.generate(GenerationOptions(seconds=4.0, seed=5))
    explicit = sampler.generate(GenerationOptions(
        seconds=4.0, seed=5, notes_per_second=3.0, pitch_histogram=pitch_histogram_for_key("Am")))
    plain = Sampler(conditioned_bundle).generate(GenerationOptions(seconds=4.0, seed=5))
    assert np.array_equal(implicit.events[0], explicit.events[0])
    assert not np.array_equal(implicit.events[0], plain.events[0])


def test_note_limits_of_the_corpus(corpus):
    from perfrnn.configs import PIANO_TRACKS
    from training.export import corpus_note_limits, training_pieces

    # every note lasts 0.15 s
    assert corpus_note_limits(training_pieces(corpus), PIANO_TRACKS) == [0.15]


def test_big_models_weights_in_two_files_are_joined(corpus, tmp_path):
    weights = tmp_path / "big.npz"
    model = fake_gpu_weights(weights, corpus, CONDITIONED, layers=(16, 16, 16))
    with np.load(weights) as opened:
        stored = {name: opened[name] for name in opened.files}
    upper = [name for name in stored if name.startswith("w:rnn/") and "cell_0/" not in name]
    np.savez(weights, **{name: value for name, value in stored.items() if name not in upper})
    np.savez(tmp_path / "big.more.npz", **{name: stored[name] for name in upper})
    from training.pack import import_weights

    loaded = load_run(import_weights(weights, tmp_path / "run"))
    assert loaded.model.layer_sizes == (16, 16, 16)
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.model.get_weights()[name],
                                      value.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("config_id", [CONDITIONED, "performance_with_dynamics", "metric_band"])
@pytest.mark.parametrize("length", [64, 512])
def test_both_trainers_build_the_same_input_rows(config_id, length):
    """`train` (TensorFlow) and gpu_train (PyTorch, from a pack) give a window
    the same events, labels and control rows: a conditioned window's density
    and key come from its own events, a metric window's position counts from
    the start of the piece."""
    config = get_config(config_id)
    maker = ExampleMaker(config, length)
    metre = COMMON_TIME if config.is_metric else None
    if config.is_metric:
        events = np.random.default_rng(2).integers(0, maker.encoding.num_classes, 700)
        ones = control_ones(maker.encoding.controls_from_events(events, metre=metre))
    else:
        events, ones = np.load(magenta_reference_path(CONDITIONED))["events"], None
    batches = gpu_train.Batches(encoding_meta(config), [], [], length, batch=1, seed=0)
    piece = gpu_train.PackedPiece(events.astype(np.int64), ones=ones)
    for start in [*range(0, len(events) - 1, 37), len(events) - 2]:
        expected = maker.window(events, start, metre)
        used = int(expected.mask.sum())
        got_events, got_rows, got_labels = batches.window(piece, start)
        np.testing.assert_array_equal(got_events[:used], expected.events[:used])
        np.testing.assert_array_equal(got_labels, np.where(expected.mask > 0, expected.labels,
                                                           -100))
        np.testing.assert_array_equal(got_rows, expected.controls.astype(np.float16))


def test_gpu_trainer_reads_a_conditioned_pack_without_tensorflow(corpus, tmp_path):
    out = tmp_path / "packed.npz"
    assert training_main(["pack", "--data", str(corpus), "--out", str(out), "--config",
                          CONDITIONED, "--augmentations", "1"]) == 0
    script = (
        "import sys\n"
        "sys.modules['tensorflow'] = sys.modules['note_seq'] = None\n"
        f"sys.path.insert(0, {str(REPO / 'training')!r})\n"
        "import gpu_train\n"
        f"meta, train, validation = gpu_train.load_pack(gpu_train.Path({str(out)!r}))\n"
        "batches = gpu_train.Batches(meta, train, validation, 32, 4, 0)\n"
        "events, rows, labels = batches.next()\n"
        "print(rows.shape, rows.dtype, len(batches.validation))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("(")[1].startswith("4, 32, 20) float16")
