"""A base model with a style input, the styles exported from it, blends, and
user styles fine-tuned from it.

Three tiny band corpora are written here with pretty_midi, each with its own
groove and bass line, and prepared for `metric_band`. Models are tiny (one
layer of 24 units); what is tested is the plumbing of the style input, the
parent of a fine-tuned style and where its training starts.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from perfrnn.bundle import read_bundle
from perfrnn.configs import get_config
from perfrnn.encodings import encoding_for
from perfrnn.errors import PerfRNNError
from perfrnn.note_lengths import QUANTILES, note_lengths
from perfrnn.options import GenerationOptions, parse_blend
from perfrnn.sampler import Sampler
from training.export import export_bundle
from training.prepare import prepare_corpus
from training.train import train_model

TINY = dict(config_id="metric_band", layer_sizes=[48], sequence_length=48, batch_size=8,
            eval_every=100, checkpoint_every=100, patience=0, log=lambda text: None)
KICK, SNARE, HAT, RIDE, TOM = 36, 38, 42, 51, 45


def _write_groove(path: Path, drums: list[tuple[float, int]], bass: list[int],
                  bars: int = 6, with_bass: bool = True) -> None:
    """`bars` bars of 4/4 at 120 BPM: the drum hits (beat, pitch) each bar and,
    unless drums only, one bass note per beat from `bass`."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    bass_part = pretty_midi.Instrument(program=33)
    for bar in range(bars):
        for beat, pitch in drums:
            start = (bar * 4 + beat) * 0.5
            kit.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=start,
                                              end=start + 0.1))
        for beat in range(4):
            start = (bar * 4 + beat) * 0.5
            bass_part.notes.append(pretty_midi.Note(velocity=90, pitch=bass[beat % len(bass)],
                                                    start=start, end=start + 0.4))
    midi.instruments.append(kit)
    if with_bass:
        midi.instruments.append(bass_part)
    midi.write(str(path))


def _corpus(root: Path, name: str, drums, bass, with_bass: bool = True) -> Path:
    music = root / f"{name}-music"
    music.mkdir()
    for take in range(4):
        _write_groove(music / f"{name}{take}.mid", drums, [pitch + take for pitch in bass],
                      bars=6 + take, with_bass=with_bass)
    out = root / name
    prepare_corpus(name, [music], out, config_id="metric_band", kind="band",
                   validation_fraction=0.25, seed=0)
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """Three styles with their own drums and bass registers, so that which
    notes come next depends mostly on the style."""
    root = tmp_path_factory.mktemp("base-corpora")
    return {
        "floor": _corpus(root, "floor", [(0, KICK), (1, KICK), (2, KICK), (3, KICK),
                                         (0.5, HAT), (1.5, HAT), (2.5, HAT), (3.5, HAT)],
                         [28, 28, 35, 33]),
        "backbeat": _corpus(root, "backbeat", [(1, SNARE), (3, SNARE), (0, RIDE), (2, RIDE)],
                            [52, 55, 57, 55]),
        "kit": _corpus(root, "kit", [(0, TOM), (1.5, TOM), (2, TOM + 2), (3, TOM + 2)], [40],
                       with_bass=False),
    }


@pytest.fixture(scope="module")
def base_run(corpora, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "run"
    train_model([corpora["floor"], corpora["backbeat"], corpora["kit"]], out, steps=400,
                seed=2, **TINY)
    return out


@pytest.mark.slow
def test_a_base_learns_each_corpus_as_a_style_and_reports_each(base_run):
    settings = json.loads((base_run / "train_config.json").read_text())
    assert settings["style_names"] == ["floor", "backbeat", "kit"]
    history = json.loads((base_run / "history.json").read_text())
    last = history[-1]
    assert set(last["style_validation_nll"]) == {"floor", "backbeat", "kit"}
    assert last["validation_nll"] == pytest.approx(np.mean(list(
        last["style_validation_nll"].values())))
    assert last["validation_nll"] < math.log(encoding_for(get_config("metric_band")).num_classes)


@pytest.mark.slow
def test_the_style_input_tells_the_base_which_style_to_play(base_run, corpora):
    """Each corpus is likelier under its own style than under the others."""
    from training.prepare import read_prepared
    from training.runs import load_run
    from training.train import ExampleMaker, make_eval_step, validation_nll

    run = load_run(base_run)
    maker = ExampleMaker(run.config, 48)
    eval_step = make_eval_step(run.model)
    for own, name in enumerate(run.config.style_names):
        pieces = read_prepared(corpora[name], "train")
        scores = []
        for style in np.eye(3, dtype=np.float32):
            windows = maker.validation_windows(pieces, 16, style)
            scores.append(validation_nll(eval_step, windows, 16))
        assert int(np.argmin(scores)) == own, (name, scores)


@pytest.mark.slow
def test_a_style_exported_from_the_base_plays_its_style_and_blends(base_run, tmp_path):
    path = export_bundle(base_run, tmp_path / "floor.mag", style="floor")
    bundle = read_bundle(path)
    assert bundle.config.style_names == ("floor", "backbeat", "kit")
    assert bundle.metadata.style_mix == {"floor": 1.0}
    assert bundle.metadata.parts == ["drums", "bass"]  # what its corpus plays
    assert bundle.metadata.training["base_corpora"] == ["floor", "backbeat", "kit"]
    # its own corpus first, then what the shared weights also learned from
    learned = [item.get("learned_in") for item in bundle.metadata.provenance]
    assert learned[0] is None
    assert set(learned[1:]) == {"the base's backbeat corpus", "the base's kit corpus"}
    assert "| its own corpus |" in bundle.metadata.card
    sampler = Sampler(bundle)
    options = GenerationOptions(bars=4, bpm=120, seed=5, temperature=0.8)
    own = sampler.generate(options).events[0]
    assert np.array_equal(own, sampler.generate(options).events[0])
    as_itself = sampler.generate(GenerationOptions(
        bars=4, bpm=120, seed=5, temperature=0.8, blend=(("floor", 1.0),))).events[0]
    assert np.array_equal(own, as_itself)
    # Sampled with the same random numbers, a style input this small model has
    # learnt little of can leave 4 bars as they were; the next 12 are not.
    longer = dict(bars=16, bpm=120, seed=5, temperature=0.8)
    blended = sampler.generate(GenerationOptions(
        **longer, blend=parse_blend("floor:30,backbeat:70"))).events[0]
    assert not np.array_equal(sampler.generate(GenerationOptions(**longer)).events[0], blended)
    with pytest.raises(PerfRNNError, match="unknown style 'jazz'.*floor, backbeat, kit"):
        sampler.generate(GenerationOptions(bars=2, blend=(("jazz", 1.0),)))
    with pytest.raises(PerfRNNError, match="is a base model of the styles"):
        export_bundle(base_run, tmp_path / "nope.mag", style="nope")


@pytest.mark.slow
def test_an_exported_style_ends_its_notes_as_its_corpus_does(base_run, tmp_path):
    bundle = read_bundle(export_bundle(base_run, tmp_path / "backbeat.mag", style="backbeat"))
    drums, bass, harmony, lead = bundle.metadata.note_length_steps
    # 12 steps a beat at 120 BPM: bass notes of 0.4 s are 10 steps, hits of 0.1 s 2
    assert len(bass) == QUANTILES and set(bass) == {10.0}
    assert set(drums) == {2.0}
    assert harmony == [] and lead == []
    generation = Sampler(bundle).generate(GenerationOptions(
        bars=8, bpm=120, seed=3, variations=2, temperature=1.5))
    on_keys, off_keys, _ = bundle.encoding.note_keys()
    for events, sequence in zip(generation.events, generation.sequences):
        # the loop itself ended them: the network was fed each note-off by step 10
        lengths = note_lengths(events, on_keys, off_keys, bundle.encoding.time_shift_steps(),
                               128)
        assert lengths[1] and max(lengths[1]) <= 10
        played = [note.end_time - note.start_time for note in sequence.notes
                  if note.instrument == 1]
        assert played and max(played) <= 10 / 24 + 1e-6
        assert sequence.total_time == pytest.approx(16.0)


@pytest.mark.slow
def test_a_drum_style_of_a_band_base_plays_only_its_kit(base_run, tmp_path):
    bundle = read_bundle(export_bundle(base_run, tmp_path / "kit.mag", style="kit"))
    assert bundle.metadata.parts == ["drums"]
    assert [track.name for track in bundle.metadata.played_tracks] == ["drums"]
    assert {entry["track"] for entry in bundle.metadata.types} == {"drums"}  # kits
    generation = Sampler(bundle).generate(GenerationOptions(
        bars=8, bpm=120, seed=1, variations=3, temperature=1.5))
    notes = [note for sequence in generation.sequences for note in sequence.notes]
    assert notes and all(note.is_drum for note in notes)


@pytest.mark.parametrize("text", ["", "rock:x", "rock:-1", "rock:0", "rock:inf", "rock:1,rock:2",
                                  ",".join(f"{name}:1" for name in "abcdefghi")])
def test_a_bad_blend_is_refused(text):
    with pytest.raises(PerfRNNError):
        parse_blend(text)


@pytest.mark.slow
def test_a_user_style_starts_from_the_base(base_run, corpora, tmp_path):
    """Fine-tuned on a corpus the base never saw: the parent is recorded, the
    nearest parent style is its style input, and its first step's loss is the
    base's, far below a new model's."""
    root = tmp_path / "user"
    root.mkdir()
    user = _corpus(root, "user", [(0, KICK), (1, KICK), (2, KICK), (3, KICK),
                                  (0.5, HAT), (1.5, HAT), (2.5, HAT), (3.5, HAT)],
                   [41, 41, 48, 46])
    tuned = train_model(user, tmp_path / "tuned", steps=4, seed=3, init_from=base_run,
                        **{**TINY, "layer_sizes": None})
    scratch = train_model(user, tmp_path / "scratch", steps=4, seed=3, **TINY)
    settings = json.loads((tmp_path / "tuned" / "train_config.json").read_text())
    assert settings["parent"] == str(base_run)
    assert settings["style_mix"] == {"floor": 1.0}  # the base's nearest style
    assert tuned.first_train_loss < scratch.first_train_loss - 1.0
    # Run again, it resumes from its own checkpoint and keeps its parent and style.
    resumed = train_model(user, tmp_path / "tuned", steps=6, seed=3,
                          **{**TINY, "layer_sizes": None})
    assert resumed.start_step == 4 and resumed.steps == 6
    assert json.loads((tmp_path / "tuned" / "train_config.json").read_text()) == settings
    with pytest.raises(PerfRNNError, match="fine-tuned from .*use another --out"):
        train_model(user, tmp_path / "tuned", steps=8, init_from=tmp_path / "scratch",
                    **{**TINY, "layer_sizes": None})
    bundle = read_bundle(export_bundle(tmp_path / "tuned", tmp_path / "user.mag"))
    assert bundle.metadata.style == "user"
    assert bundle.metadata.style_mix == {"floor": 1.0}
    assert bundle.metadata.training["parent"] == str(base_run)
    assert Sampler(bundle).generate(GenerationOptions(bars=2, seed=1)).sequences[0].notes
    # its weights learned the base's music first: the card lists it, with licences
    learned = {item.get("learned_in") for item in bundle.metadata.provenance}
    assert learned == {None, "the base's floor corpus", "the base's backbeat corpus",
                       "the base's kit corpus"}
    assert "| the base's kit corpus |" in bundle.metadata.card


@pytest.mark.slow
def test_fine_tuning_refuses_what_does_not_fit_its_parent(base_run, corpora, tmp_path):
    with pytest.raises(PerfRNNError, match="keeps its parent's layer sizes"):
        train_model(corpora["floor"], tmp_path / "a", steps=1, init_from=base_run,
                    **{**TINY, "layer_sizes": [32]})
    with pytest.raises(PerfRNNError, match="fine-tune it with --config metric_band"):
        train_model(corpora["floor"], tmp_path / "b", steps=1, init_from=base_run,
                    **{**TINY, "config_id": "metric_drums", "layer_sizes": None})
    with pytest.raises(PerfRNNError, match="two corpora are both called 'floor'"):
        train_model([corpora["floor"], corpora["floor"]], tmp_path / "c", steps=1, **TINY)
    with pytest.raises(PerfRNNError, match="needs a metric configuration"):
        train_model([corpora["floor"], corpora["kit"]], tmp_path / "d", steps=1,
                    **{**TINY, "config_id": "multitrack_performance_with_dynamics"})


def test_a_kit_alone_prepares_into_a_band_bases_drum_part(tmp_path):
    from training.prepare import read_prepared

    music = tmp_path / "songs"
    music.mkdir()
    _write_groove(music / "song.mid", [(0, KICK), (2, SNARE)], [40])
    prepare_corpus("grooves", [music], tmp_path / "data", config_id="metric_band",
                   kind="drums", validation_fraction=0)
    notes = [note for piece in read_prepared(tmp_path / "data", "train") for note in piece.notes]
    assert notes and all(note.is_drum and note.instrument == 0 for note in notes)
    # A kit prepared for the one-part drum configuration does not fit a band's drum part.
    prepare_corpus("grooves", [music], tmp_path / "one-part", config_id="metric_drums",
                   kind="drums", validation_fraction=0)
    with pytest.raises(PerfRNNError, match="prepare it again with --config metric_band"):
        train_model(tmp_path / "one-part", tmp_path / "run", steps=1, **TINY)


@pytest.mark.slow
def test_the_website_blends_styles_of_one_base(base_run, tmp_path, make_app):
    """The API's `blend` and the page's "blend with" and amount reach the
    sampler; a blend a style cannot play is refused on its field."""
    import shutil

    from conftest import magenta_bundle_path, wait_for_job

    bundles = tmp_path / "bundles"
    export_bundle(base_run, bundles / "floor.mag", style="floor")
    shutil.copy(magenta_bundle_path("performance_with_dynamics"), bundles / "piano.mag")
    export_bundle(base_run, bundles / "backbeat.mag", style="backbeat")
    app = make_app(BUNDLES_DIR=str(bundles))
    client = app.test_client()
    listed = {style["name"]: style for style in client.get("/api/v1/styles").get_json()["styles"]}
    assert listed["floor"]["blend_styles"] == ["floor", "backbeat", "kit"]
    assert listed["floor"]["style_mix"] == {"floor": 1.0}

    def midi_of(**fields) -> bytes:
        response = client.post("/api/v1/generations", json={
            "style": "floor", "bars": 4, "bpm": 120, "seed": 9, **fields})
        assert response.status_code == 202, response.get_data(as_text=True)
        job_id = response.get_json()["job"]["id"]
        assert wait_for_job(app, job_id, 60).state == "done"
        return client.get(f"/api/v1/generations/{job_id}/midi").data

    alone = midi_of()
    blended = midi_of(blend="floor:10,kit:90")  # kit: drums alone, no bass
    assert alone.startswith(b"MThd") and blended.startswith(b"MThd") and alone != blended
    for blend in ("jazz:100", "floor:-5", "floor"):
        response = client.post("/api/v1/generations",
                               json={"style": "floor", "bars": 4, "blend": blend})
        if blend == "floor":  # a weight may be left out: it counts 1
            assert response.status_code == 202
            continue
        assert response.status_code == 422 and response.get_json()["fields"]["blend"]
    response = client.post("/api/v1/generations", json={"style": "piano", "blend": "floor:1"})
    assert response.status_code == 422
    assert "cannot blend" in response.get_json()["fields"]["blend"]

    page = client.get("/?style=floor").get_data(as_text=True)
    assert 'id="blend-group"' in page and "data-blend-styles='[\"backbeat\", \"kit\"]'" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/", data={"csrf_token": token, "style": "floor", "length": "4",
                                      "unit": "bars",
                                      "bpm": "120", "seed": "9", "blend_with": "kit",
                                      "blend_amount": "90"})
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    job_id = response.headers["Location"].rstrip("/").split("/")[-1]
    assert wait_for_job(app, job_id, 60).state == "done"
    assert client.get(f"/api/v1/generations/{job_id}/midi").data == blended


@pytest.mark.slow
def test_each_style_of_a_base_is_evaluated_on_its_own_corpus(base_run, tmp_path):
    from training.evaluate import evaluate_run

    with pytest.raises(PerfRNNError, match="choose one with --style"):
        evaluate_run(base_run, samples=1, seconds=4)
    with pytest.raises(PerfRNNError, match="'jazz' is not one"):
        evaluate_run(base_run, samples=1, seconds=4, style="jazz")
    result = evaluate_run(base_run, samples=2, seconds=4, style="backbeat")
    assert result.out_dir == base_run / "evaluation" / "backbeat"
    assert set(result.part_polyphony) == {"bass", "harmony", "lead"}
    assert result.part_polyphony["bass"]["real"] == pytest.approx(1.0)  # one note at a time
    assert result.part_polyphony["lead"]["real"] is None  # no lead in this corpus
    history = json.loads((base_run / "history.json").read_text())
    assert result.validation_nll_per_event == pytest.approx(
        history[-1]["style_validation_nll"]["backbeat"], rel=0.05)
    bundle = read_bundle(export_bundle(base_run, tmp_path / "b.mag", style="backbeat"))
    assert bundle.metadata.metrics["validation_nll_per_event"] == pytest.approx(
        result.validation_nll_per_event)
    assert "in the bass part" in bundle.metadata.card


@pytest.mark.slow
def test_a_base_packs_for_the_gpu_trainer_and_comes_back(base_run, corpora, tmp_path):
    """The GPU path (numpy side): a pack of several corpora carries each input
    row's controls as the columns that are 1 and each piece's corpus; the GPU
    trainer rebuilds the rows training uses; imported weights are a base again."""
    import sys

    from training.pack import import_weights, pack_corpus
    from training.prepare import read_prepared
    from training.runs import load_run
    from training.train import ExampleMaker

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    import gpu_train

    data = [corpora["floor"], corpora["backbeat"], corpora["kit"]]
    meta = pack_corpus(data, tmp_path / "base.npz", "metric_band", augmentations=2)
    assert meta["style_names"] == ["floor", "backbeat", "kit"] and meta["control_ones"]
    meta, train, validation = gpu_train.load_pack(tmp_path / "base.npz")
    assert sorted({piece.corpus for piece in train}) == [0, 1, 2]
    first_backbeat = next(piece for piece in train if piece.corpus == 1)  # an unaugmented copy
    maker = ExampleMaker(load_run(base_run).config, len(first_backbeat) - 1)
    events = maker.encode(read_prepared(corpora["backbeat"], "train")[0])
    controls, inputs, _, _ = maker.window(events, 0, maker.metre(
        read_prepared(corpora["backbeat"], "train")[0]), np.eye(3, dtype=np.float32)[1])
    np.testing.assert_array_equal(first_backbeat.events[:-1], inputs)
    np.testing.assert_array_equal(
        gpu_train.window_controls(meta, first_backbeat, 0, len(first_backbeat) - 1), controls)
    batches = gpu_train.Batches(meta, train, validation, 16, 30, seed=0)
    events, rows, labels = batches.next()
    assert rows.shape == (30, 16, meta["control_size"]) and rows.sum(axis=2).max() == 5
    assert {int(np.argmax(row[0, -3:])) for row in rows} == {0, 1, 2}  # every corpus drawn

    weights = {f"w:{name}": value for name, value in load_run(base_run).model.get_weights().items()}
    gpu_meta = {"config": "metric_band", "data": meta["data"], "name": meta["name"],
                "style_names": meta["style_names"], "step": 7, "sequence_length": 16,
                "batch_size": 30, "history": []}
    np.savez(tmp_path / "base-weights.npz", meta=np.array(json.dumps(gpu_meta)), **weights)
    run = load_run(import_weights(tmp_path / "base-weights.npz", tmp_path / "imported"))
    assert run.is_base and run.config.style_names == ("floor", "backbeat", "kit")
    bundle = read_bundle(export_bundle(tmp_path / "imported", tmp_path / "kit.mag", style="kit"))
    assert bundle.metadata.parts == ["drums"] and bundle.metadata.style_mix == {"kit": 1.0}


def test_the_fidelity_classifier_can_learn_from_reference_music(corpora, tmp_path, capsys):
    from training.__main__ import main
    from training.classify import genre_fidelity, render_fidelity_report

    styles = {name: corpora[name] for name in ("floor", "backbeat")}
    plain = genre_fidelity(styles, {}, pieces=1, seconds=2.0)
    referenced = genre_fidelity(styles, {}, pieces=1, seconds=2.0,
                                references={"floor": [corpora["floor"]]})
    # both splits of the reference: the training takes join the held-out one
    assert referenced.real_excerpts["floor"] > plain.real_excerpts["floor"]
    assert referenced.real_excerpts["backbeat"] == plain.real_excerpts["backbeat"]
    assert f"floor {corpora['floor']}" in render_fidelity_report(referenced)
    assert "reference" not in render_fidelity_report(plain)
    with pytest.raises(PerfRNNError, match="which have no corpus"):
        genre_fidelity(styles, {}, references={"jazz": [corpora["kit"]]})
    assert main(["classify", "--style", f"floor={corpora['floor']}",
                 "--reference", f"jazz={corpora['kit']}", "--out", str(tmp_path)]) == 2
    assert "no --style jazz" in capsys.readouterr().err
