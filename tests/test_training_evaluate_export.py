"""prepare -> train (interrupted, resumed) -> evaluate -> export -> generate, and the
pipeline as one library call; on small music the tests write themselves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from perfrnn.bundle import read_bundle
from perfrnn.cli import main as perfrnn_main
from perfrnn.errors import PerfRNNError
from training.__main__ import main as training_main
from training.evaluate import evaluate_run, excerpts
from training.export import export_bundle, parse_tracks
from training.pipeline import PRESETS, Preset, train_style
from training.prepare import prepare_corpus
from training.runs import load_run
from training.train import train_model

TINY = dict(layer_sizes=[24, 24], sequence_length=48, batch_size=4, eval_every=10,
            checkpoint_every=10, log=lambda text: None)
SCALE = (0, 2, 4, 5, 7, 9, 11, 12)
PNG = b"\x89PNG\r\n\x1a\n"


def write_tune(path: Path, tonic: int, seed: int, notes: int = 96, drums: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=100 + seed)
    part = pretty_midi.Instrument(program=0, is_drum=drums)
    now = 0.0
    for _ in range(notes):
        pitch = (36 if rng.random() < 0.5 else 42) if drums else tonic + int(rng.choice(SCALE))
        part.notes.append(pretty_midi.Note(velocity=int(rng.integers(50, 110)), pitch=pitch,
                                           start=now, end=now + 0.2))
        now += 0.25
    midi.instruments.append(part)
    midi.write(str(path))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Six tunes in three keys, listed in a datasets-style manifest with a licence."""
    root = tmp_path_factory.mktemp("evaluate")
    music = root / "tunes"
    music.mkdir()
    files = []
    for index, tonic in enumerate((60, 62, 65, 60, 62, 67)):
        write_tune(music / f"tune{index}.mid", tonic, seed=index)
        files.append({"file": f"tune{index}.mid", "source": "made by the test",
                      "licence": "CC0-1.0", "split": "validation" if index >= 4 else "train"})
    (music / "manifest.json").write_text(json.dumps(
        {"format": "perfrnn-corpus/1", "name": "tunes", "files": files}))
    data = root / "data"
    prepare_corpus("tunes", [music], data)
    return data


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    """A run interrupted at step 10 and resumed to step 30."""
    out = tmp_path_factory.mktemp("run") / "run"
    steps_seen = []
    first = train_model(corpus, out, steps=30, seed=2, should_stop=lambda: len(steps_seen) >= 10,
                        progress=lambda step, *rest: steps_seen.append(step), **TINY)
    assert first.interrupted and first.steps == 10
    second = train_model(corpus, out, steps=30, seed=2, **TINY)
    assert second.start_step == 10 and second.steps == 30
    return out


@pytest.fixture(scope="module")
def evaluation(run):
    stages = []
    result = evaluate_run(run, samples=5, seconds=6.0, seed=4,
                          progress=lambda stage, done, total: stages.append(stage))
    assert stages[0] == "validation" and "generating" in stages and stages[-1] == "metrics"
    return result


@pytest.mark.slow
def test_evaluation_figures(evaluation, run):
    assert evaluation.step == 30
    assert evaluation.generated_pieces == 5 and evaluation.real_pieces == 5
    assert 0 < evaluation.validation_nll_per_event < math.log(388)
    assert set(evaluation.overlapping_area) >= {
        "pitch_class_entropy", "scale_consistency", "polyphony", "note_density",
        "median_ioi_beats", "empty_beat_rate"}
    assert all(0.0 <= value <= 1.0 for value in evaluation.overlapping_area.values())
    assert evaluation.mean_overlapping_area == pytest.approx(
        np.mean(list(evaluation.overlapping_area.values())))
    # the real side of the comparison really is the held-out music: all in one major scale
    assert evaluation.summary["scale_consistency"]["real_mean"] == pytest.approx(1.0)
    assert evaluation.summary["drum_pattern_consistency"]["real_count"] == 0

    saved = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert saved["validation_nll_per_event"] == pytest.approx(
        evaluation.validation_nll_per_event)
    assert saved["metrics"]["drum_pattern_consistency"]["real_mean"] is None  # nan -> null


@pytest.mark.slow
def test_held_out_nll_is_the_validation_loss_of_the_best_weights(evaluation, run):
    history = json.loads((run / "history.json").read_text())
    best = min(point["validation_nll"] for point in history)
    assert evaluation.validation_nll_per_event == pytest.approx(best, rel=1e-4)


@pytest.mark.slow
def test_report_links_plots_that_exist(evaluation, run):
    folder = run / "evaluation"
    report = evaluation.report_path.read_text()
    for picture in ("metrics.png", "ioi.png", "loss.png", "pianoroll.png", "pianoroll_real.png"):
        assert f"]({picture})" in report
        assert (folder / picture).read_bytes().startswith(PNG)
    assert "| scale_consistency |" in report and "nats per event" in report
    samples = sorted((folder / "samples").glob("*.mid"))
    assert len(samples) == 4
    for path in samples:
        assert abs(mido.MidiFile(str(path)).length - 6.0) < 0.05
        assert pretty_midi.PrettyMIDI(str(path)).instruments[0].notes


def test_excerpts_are_cut_round_robin():
    from note_seq.protobuf import music_pb2

    pieces = []
    for length in (20.0, 4.0):
        sequence = music_pb2.NoteSequence(total_time=length)
        for second in range(int(length)):
            sequence.notes.add(pitch=60, start_time=second, end_time=second + 0.5, velocity=80)
        pieces.append(sequence)
    cut = excerpts(pieces, 5.0, limit=3)
    assert [len(piece.notes) for piece in cut] == [5, 4, 5]
    assert all(piece.total_time == 5.0 for piece in cut)


@pytest.mark.slow
def test_export_then_generate(evaluation, run, tmp_path, capsys):
    path = tmp_path / "bundles" / "tunes.mag"
    assert training_main(["export", "--run", str(run), "--out", str(path), "--style",
                          "Test tunes", "--description", "made in a test"]) == 0
    assert "wrote" in capsys.readouterr().out
    bundle = read_bundle(path)
    meta = bundle.metadata
    assert meta.style == "Test tunes" and meta.description == "made in a test"
    assert meta.provenance == [{"source": "made by the test", "licence": "CC0-1.0",
                                "files": 6, "minutes": pytest.approx(2.4, abs=0.1)}]
    assert meta.training["steps"] == 30 and meta.training["layer_sizes"] == [24, 24]
    assert meta.metrics["mean_overlapping_area"] == pytest.approx(
        evaluation.mean_overlapping_area)
    assert meta.metrics["validation_nll_per_event"] == pytest.approx(
        evaluation.validation_nll_per_event)
    assert 100 <= meta.default_bpm <= 106  # the corpus' median tempo
    assert meta.types[0] == {"name": "Acoustic Grand Piano", "program": 0, "track": "piano"}
    assert "CC0-1.0" in meta.card and "Held-out validation NLL" in meta.card
    # its own music's norms, for scoring what it generates
    from perfrnn.scoring import StyleReferences, scorer_for

    norms = StyleReferences.from_dict(meta.references)
    assert norms.excerpts >= 1 and norms.on_beat_p5 is None  # a time-based style
    assert 0 < norms.silence_p99_seconds < 5 and norms.in_key_p5 > 0.5
    scorer = scorer_for(bundle)
    assert scorer.references == norms and scorer.classifier is None  # none beside it
    # the bundle holds the best checkpoint's weights
    loaded = load_run(run)
    for name, value in loaded.model.get_weights().items():
        np.testing.assert_array_equal(bundle.model.get_weights()[name], value)

    out = tmp_path / "out"
    assert perfrnn_main(["generate", "--bundle", str(path), "--seconds", "8", "--seed", "3",
                         "--out", str(out)]) == 0
    (midi_path,) = out.glob("*.mid")
    assert midi_path.name == "Test_tunes-8s-seed3.mid"
    assert abs(mido.MidiFile(str(midi_path)).length - 8.0) < 0.05


@pytest.mark.slow
def test_drum_corpus_exports_a_kit(tmp_path):
    music = tmp_path / "grooves"
    music.mkdir()
    for index in range(3):
        write_tune(music / f"groove{index}.mid", 0, seed=index, drums=True)
    prepare_corpus("grooves", [music], tmp_path / "data", kind="drums")
    train_model(tmp_path / "data", tmp_path / "run", steps=2, **TINY)
    bundle = read_bundle(export_bundle(tmp_path / "run", tmp_path / "drums.mag"))
    assert bundle.metadata.tracks[0].is_drum
    assert [t["program"] for t in bundle.metadata.types][:2] == [0, 8]
    assert bundle.metadata.types[4]["name"] == "TR-808 kit"


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--run", "{tmp}/nothing"], "is not a training run"),
    (["evaluate", "--run", "{run}", "--samples", "0"], "samples must be"),
    (["evaluate", "--run", "{run}", "--seconds", "0"], "length"),
    (["export", "--run", "{run}", "--out", "{tmp}/x.zip"], "must end in .mag"),
    (["export", "--run", "{tmp}/nothing", "--out", "{tmp}/x.mag"], "is not a training run"),
    (["export", "--run", "{run}", "--out", "{tmp}/x.mag", "--tracks", "a:300"], "bad track"),
    (["export", "--run", "{run}", "--out", "{tmp}/x.mag", "--tracks", "a:1,b:2"],
     "model writes 1 parts"),
    (["export", "--run", "{run}", "--out", "{tmp}/x.mag", "--types", "{tmp}/none.json"],
     "cannot read --types"),
])
@pytest.mark.slow
def test_errors_are_one_line(run, tmp_path, capsys, argv, message):
    argv = [item.format(tmp=tmp_path, run=run) for item in argv]
    assert training_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.mag").exists()


def test_parse_tracks():
    tracks = parse_tracks("drums:16:drum, bass:34,guitar:29,lead:30")
    assert [(t.name, t.program, t.is_drum) for t in tracks] == [
        ("drums", 16, True), ("bass", 34, False), ("guitar", 29, False), ("lead", 30, False)]
    with pytest.raises(PerfRNNError):
        parse_tracks("drums:0:cymbal")


def test_no_checkpoint_yet(corpus, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train_config.json").write_text(json.dumps(
        {"config": "performance_with_dynamics", "layer_sizes": [8], "data": str(corpus)}))
    with pytest.raises(PerfRNNError, match="no checkpoint yet"):
        load_run(tmp_path / "run")


@pytest.mark.slow
def test_the_pipeline_as_a_library_call(corpus, tmp_path):
    tunes = tmp_path / "tunes"
    tunes.mkdir()
    for index, tonic in enumerate((60, 64, 67)):
        write_tune(tunes / f"t{index}.mid", tonic, seed=10 + index, notes=64)
    preset = Preset("test", "tiny", (16,), steps=12, batch_size=4, sequence_length=32,
                    eval_every=6, samples=2)
    stages = []
    polls = []

    def stop_once_trained_a_little() -> bool:
        polls.append(1)
        return len(polls) == 5  # once after prepare, then after each step

    with pytest.raises(PerfRNNError, match="cancelled at step 4"):
        train_style("My style", [tunes], tmp_path / "work", tmp_path / "my.mag", preset=preset,
                    should_stop=stop_once_trained_a_little, log=lambda text: None)
    assert not (tmp_path / "my.mag").exists()
    result = train_style("My style", [tunes], tmp_path / "work", tmp_path / "my.mag",
                         preset=preset, log=lambda text: None,
                         progress=lambda stage, fraction, details: stages.append(
                             (stage, fraction, details)))
    assert result.train.start_step == 4 and result.train.steps == 12
    order = [stage for stage, _, _ in stages]
    assert order.index("prepare") < order.index("train") < order.index("evaluate") \
        < order.index("export")
    losses = [details["loss"] for stage, _, details in stages if "loss" in details]
    assert len(losses) == 8 and all(math.isfinite(loss) for loss in losses)
    assert all(0.0 <= fraction <= 1.0 for _, fraction, _ in stages)
    bundle = read_bundle(result.bundle_path)
    assert bundle.metadata.style == "My style"
    assert "'test' preset" in bundle.metadata.card
    assert set(PRESETS) == {"quick", "standard", "large"}
