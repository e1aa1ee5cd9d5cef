"""Tests for `python -m training prepare` and training.prepare.prepare_corpus.

Every input is a real file made here: MIDI written with pretty_midi (with a
drum track on channel 10), hand-written MusicXML with and without a tempo, ABC
tunes, random bytes posing as MIDI, and zip archives, good and hostile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pretty_midi
import pytest
from test_music_io import MXL_CONTAINER, XML_NOTE, XML_TEMPLATE

from perfrnn import archives
from perfrnn.configs import get_config
from perfrnn.errors import PerfRNNError
from perfrnn.performance_encoding import PerformanceEncoding
from training import prepare as prepare_module
from training.__main__ import main
from training.prepare import (
    IGNORED_TEMPO_WARNING,
    NO_TEMPO_WARNING,
    prepare_corpus,
    read_manifest,
    read_prepared,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

XML_SOUND_TEMPO = """
      <direction placement="above">
        <direction-type><words>Andante</words></direction-type>
        <sound tempo="90"/>
      </direction>"""
XML_METRONOME_ONLY = """
      <direction placement="above">
        <direction-type><metronome><beat-unit>quarter</beat-unit>
          <per-minute>60</per-minute></metronome></direction-type>
      </direction>"""


ABC_WITH_TEMPO = "X:1\nT:With tempo\nM:4/4\nL:1/4\nQ:1/4=100\nK:C\nCDEF|\n"
ABC_NO_TEMPO = "X:1\nT:No tempo\nM:4/4\nL:1/4\nK:C\nGABc|\n"


# ----- making input files ------------------------------------------------------------------


def write_midi(path: Path, pitched: int = 0, drums: int = 0, first_pitch: int = 60) -> Path:
    """A MIDI file with `pitched` piano notes and `drums` notes on channel 10, 0.5 s apart."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    if pitched:
        piano = pretty_midi.Instrument(program=0, name="piano")
        piano.notes = [pretty_midi.Note(velocity=80, pitch=first_pitch + i % 12,
                                        start=0.5 * i, end=0.5 * i + 0.4) for i in range(pitched)]
        midi.instruments.append(piano)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        kit.notes = [pretty_midi.Note(velocity=100, pitch=36 + 2 * (i % 3), start=0.5 * i,
                                      end=0.5 * i + 0.1) for i in range(drums)]
        midi.instruments.append(kit)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def musicxml(direction: str = "") -> str:
    return XML_TEMPLATE.format(tempo=direction,
                               notes="".join(XML_NOTE.format(step=s) for s in "CDEF"))


def write_corrupt(path: Path, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((seed * 7919 + i * 104729) % 251 for i in range(600)))
    return path


def make_corpus(folder: Path) -> Path:
    """A folder of every kind of input, good and bad. Expected results in EXPECTED_*."""
    write_midi(folder / "piano_with_drums.mid", pitched=8, drums=4)
    write_midi(folder / "piano.mid", pitched=6, first_pitch=64)
    write_midi(folder / "sub" / "deeper" / "arpeggio.midi", pitched=5, first_pitch=48)
    write_midi(folder / "sub" / "copy_of_piano.mid", pitched=6, first_pitch=64)  # same bytes
    write_midi(folder / "drums_only.mid", drums=10)
    write_text(folder / "with_tempo.xml", musicxml(XML_SOUND_TEMPO))
    write_text(folder / "no_tempo.musicxml", musicxml())
    write_text(folder / "metronome.xml", musicxml(XML_METRONOME_ONLY))
    write_text(folder / "tune.abc", ABC_WITH_TEMPO)
    write_text(folder / "sub" / "tune_no_tempo.abc", ABC_NO_TEMPO)
    write_corrupt(folder / "corrupt.mid")
    write_text(folder / "notes.txt", "not music")
    return folder


# source -> (pitched notes kept, seconds) for the pitched corpus
EXPECTED_USED = {
    "piano_with_drums.mid": (8, 3.9),
    "piano.mid": (6, 2.9),
    "sub/deeper/arpeggio.midi": (5, 2.4),
    "with_tempo.xml": (4, 4 * 60 / 90),
    "no_tempo.musicxml": (4, 2.0),
    "metronome.xml": (4, 2.0),
    "tune.abc": (4, 4 * 60 / 100),
    "sub/tune_no_tempo.abc": (4, 2.0),
}
EXPECTED_SKIPPED = {
    "corrupt.mid": "unreadable",
    "drums_only.mid": "only_drums",
    "sub/copy_of_piano.mid": "duplicate",
}


def make_zip(path: Path, entries: dict[str, bytes | Path],
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in entries.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def all_files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


@pytest.fixture
def private_tempdir(tmp_path, monkeypatch) -> Path:
    """The system temp dir, redirected into tmp_path so that tests can look inside it."""
    folder = tmp_path / "systemp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# ----- the whole corpus through the library ----------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    corpus = make_corpus(root / "corpus")
    calls = []
    result = prepare_corpus(
        "piano test", [corpus], root / "data" / "piano", validation_fraction=0.25, seed=3,
        progress=lambda done, total, source: calls.append((done, total, source)))
    return root, corpus, result, calls


def test_manifest_lists_every_file_with_split_or_reason(prepared):
    root, corpus, result, _ = prepared
    out = root / "data" / "piano"
    assert all_files(out) == {"train.tfrecord", "validation.tfrecord", "manifest.json",
                              "report.md"}
    manifest = read_manifest(out)
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "piano test"
    assert manifest["config"] == "performance_with_dynamics"
    assert manifest["kind"] == "pitched"
    assert manifest["seed"] == 3
    assert manifest["augmentation"]["transpose_semitones"] == [-3, 3]
    assert manifest["ignored_files"] == 1  # notes.txt

    files = {entry["source"]: entry for entry in manifest["files"]}
    assert set(files) == set(EXPECTED_USED) | set(EXPECTED_SKIPPED)
    for source, (notes, seconds) in EXPECTED_USED.items():
        entry = files[source]
        assert entry["status"] == "used", entry
        assert entry["split"] in ("train", "validation")
        assert entry["notes"] == notes, source
        assert entry["seconds"] == pytest.approx(seconds, abs=0.02), source
        assert entry["events"] > notes
        assert entry["input"] == str(corpus)
    for source, code in EXPECTED_SKIPPED.items():
        entry = files[source]
        assert entry["status"] == "skipped" and entry["split"] is None
        assert entry["reason_code"] == code, entry
        assert entry["reason"]
    assert "not a valid mid file" in files["corrupt.mid"]["reason"]
    assert "only drums" in files["drums_only.mid"]["reason"]
    assert files["sub/copy_of_piano.mid"]["reason"] == "same content as piano.mid"
    assert files["piano_with_drums.mid"]["dropped_notes"] == 4

    # Tempo warnings: MusicXML and ABC files without a tempo were read at 120 BPM.
    assert files["no_tempo.musicxml"]["warnings"] == [NO_TEMPO_WARNING]
    assert files["sub/tune_no_tempo.abc"]["warnings"] == [NO_TEMPO_WARNING]
    assert files["metronome.xml"]["warnings"] == [IGNORED_TEMPO_WARNING]
    assert files["with_tempo.xml"]["warnings"] == []
    assert files["tune.abc"]["warnings"] == []

    # Totals add up, per split; 25% of 8 files is 2 held out.
    for split in ("train", "validation"):
        in_split = [e for e in manifest["files"] if e["split"] == split]
        totals = manifest["totals"][split]
        assert totals["files"] == len(in_split)
        assert totals["events"] == sum(e["events"] for e in in_split)
        assert totals["notes"] == sum(e["notes"] for e in in_split)
        assert totals["minutes"] == pytest.approx(sum(e["seconds"] for e in in_split) / 60,
                                                  abs=1e-3)
    assert manifest["totals"]["validation"]["files"] == 2
    assert manifest["totals"]["skipped"]["files"] == 3


def test_events_are_counted_with_the_configs_encoding(prepared):
    root, corpus, result, _ = prepared
    encoding = PerformanceEncoding(get_config("performance_with_dynamics"))
    sequences = {s.filename: s for split in ("train", "validation")
                 for s in read_prepared(root / "data" / "piano", split)}
    for record in result.used:
        assert len(encoding.performance_from_sequence(sequences[record.source])) == record.events


def test_tfrecords_read_back_by_split_without_drums(prepared):
    root, _, result, _ = prepared
    out = root / "data" / "piano"
    train = read_prepared(out, "train")
    validation = read_prepared(out, "validation")
    train_names = {s.filename for s in train}
    validation_names = {s.filename for s in validation}

    assert not train_names & validation_names
    assert train_names | validation_names == set(EXPECTED_USED)
    assert len(train) + len(validation) == len(EXPECTED_USED)  # one record per file
    assert len(validation) == 2
    splits = {r.source: r.split for r in result.used}
    assert all(splits[name] == "train" for name in train_names)
    assert all(splits[name] == "validation" for name in validation_names)
    for sequence in train + validation:
        assert len(sequence.notes) == EXPECTED_USED[sequence.filename][0]
        assert not any(note.is_drum for note in sequence.notes)
        assert sequence.collection_name == "piano test"
        assert sequence.id.startswith("/id/")
    with pytest.raises(PerfRNNError, match="unknown split"):
        read_prepared(out, "test")
    with pytest.raises(PerfRNNError, match="prepare"):
        read_prepared(root / "nowhere", "train")


def test_read_prepared_refuses_a_corrupt_tfrecord(tmp_path):
    write_corrupt(tmp_path / "train.tfrecord")
    with pytest.raises(PerfRNNError, match="corrupt"):
        read_prepared(tmp_path, "train")
    with pytest.raises(PerfRNNError, match="not a prepared corpus"):
        read_manifest(tmp_path)


def test_report_lists_skipped_files_and_warnings(prepared):
    root, _, result, _ = prepared
    report = (root / "data" / "piano" / "report.md").read_text()
    assert "| train |" in report and "| validation |" in report
    assert "## Skipped files (3)" in report
    skipped_line = next(line for line in report.splitlines() if "corrupt.mid" in line)
    assert "not a valid mid file" in skipped_line
    assert "only drums" in report
    assert "## Files with warnings (3)" in report
    assert any("no_tempo.musicxml" in line and NO_TEMPO_WARNING in line
               for line in report.splitlines())


def test_progress_is_reported_per_file_and_nothing_else_is_left(prepared):
    root, _, _, calls = prepared
    assert [done for done, _, _ in calls] == list(range(1, 12))
    assert {total for _, total, _ in calls} == {11}
    assert all_files(root / "data") == {"piano"} | {
        f"piano/{name}" for name in ("train.tfrecord", "validation.tfrecord",
                                     "manifest.json", "report.md")}


# ----- the command line -----------------------------------------------------------------------


def test_cli_prints_summary_and_exits_0(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "data" / "piano"

    status = main(["prepare", "--name", "piano", "--input", str(corpus), "--out", str(out)])

    captured = capsys.readouterr()
    assert status == 0, captured.err
    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("split"))
    assert header.split() == ["split", "files", "minutes", "events"]
    train = next(line for line in lines if line.startswith("train")).split()
    validation = next(line for line in lines if line.startswith("validation")).split()
    manifest = read_manifest(out)
    assert int(train[1]) == manifest["totals"]["train"]["files"]
    assert int(validation[1]) == manifest["totals"]["validation"]["files"] == 1  # 10% of 8
    assert int(train[3].replace(",", "")) == manifest["totals"]["train"]["events"]
    assert "3 files skipped" in captured.out
    assert str(out / "report.md") in captured.out
    assert "Traceback" not in captured.err


def test_cli_inputs_mix_files_folders_and_zips(tmp_path, capsys):
    piano = write_midi(tmp_path / "loose" / "solo.mid", pitched=7)
    compressed = make_zip(tmp_path / "loose" / "score.mxl", {
        "META-INF/container.xml": MXL_CONTAINER.encode(),
        "score.xml": musicxml().encode(),
    })
    folder = tmp_path / "folder"
    write_midi(folder / "one.mid", pitched=3, first_pitch=50)
    songs = make_zip(tmp_path / "songs.zip", {
        "songs/": b"",
        "songs/zipped.mid": write_midi(tmp_path / "src" / "zipped.mid", pitched=9,
                                       first_pitch=70),
        "songs/no_tempo.xml": musicxml().encode(),
        "songs/readme.txt": b"hello",
        "__MACOSX/songs/._zipped.mid": b"\x00\x05\x16\x07 resource fork",
    })
    out = tmp_path / "out"

    status = main(["prepare", "--name", "mix", "--input", str(piano), str(compressed), str(folder),
                   "--input", str(songs), "--out", str(out), "--seed", "5"])

    assert status == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    used = {(e["input"], e["source"]): e for e in manifest["files"]}
    assert set(used) == {(str(piano), "solo.mid"), (str(compressed), "score.mxl"),
                         (str(folder), "one.mid"),
                         (str(songs), "songs.zip/songs/zipped.mid"),
                         (str(songs), "songs.zip/songs/no_tempo.xml")}
    assert used[(str(songs), "songs.zip/songs/zipped.mid")]["notes"] == 9
    assert used[(str(songs), "songs.zip/songs/no_tempo.xml")]["warnings"] == [NO_TEMPO_WARNING]
    assert used[(str(compressed), "score.mxl")]["warnings"] == [NO_TEMPO_WARNING]
    assert manifest["ignored_files"] == 2  # readme.txt and the macOS resource fork
    sequences = read_prepared(out, "train") + read_prepared(out, "validation")
    assert sorted(len(s.notes) for s in sequences) == [3, 4, 4, 7, 9]


def test_cli_drums_kind_keeps_only_drum_notes(tmp_path, capsys):
    folder = tmp_path / "grooves"
    write_midi(folder / "groove.mid", drums=10)
    write_midi(folder / "band.mid", pitched=4, drums=6)
    write_midi(folder / "piano.mid", pitched=5)
    out = tmp_path / "drums"

    status = main(["prepare", "--name", "drums", "--kind", "drums", "--input", str(folder),
                   "--out", str(out)])

    assert status == 0, capsys.readouterr().err
    files = {e["source"]: e for e in read_manifest(out)["files"]}
    assert files["groove.mid"]["notes"] == 10
    assert files["band.mid"]["notes"] == 6 and files["band.mid"]["dropped_notes"] == 4
    assert files["piano.mid"]["reason_code"] == "no_drum_notes"
    sequences = read_prepared(out, "train") + read_prepared(out, "validation")
    assert len(sequences) == 2
    assert all(note.is_drum for s in sequences for note in s.notes)


def test_drums_only_folder_for_pitched_style_says_use_kind_drums(tmp_path, capsys):
    folder = tmp_path / "grooves"
    write_midi(folder / "a.mid", drums=8)
    write_midi(folder / "b.mid", drums=5)
    out = tmp_path / "data" / "grooves"

    status = main(["prepare", "--name", "grooves", "--input", str(folder), "--out", str(out)])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "only drums" in err and "--kind drums" in err
    assert not (tmp_path / "data").exists()


def usage_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """Bad invocations: argv after `prepare --name x --out OUT`, and a bit of the message."""
    empty = tmp_path / "empty"
    empty.mkdir()
    unparsable = tmp_path / "unparsable"
    write_corrupt(unparsable / "a.mid", seed=1)
    write_corrupt(unparsable / "b.midi", seed=2)
    write_text(unparsable / "c.xml", "<score-partwise><part")
    good = write_midi(tmp_path / "good" / "g.mid", pitched=4)
    slip_only = make_zip(tmp_path / "slip.zip", {"ok.mid": good, "../evil.mid": good})
    return {
        "missing input": (["--input", str(tmp_path / "nope")], "input not found"),
        "empty folder": (["--input", str(empty)], "no music files found"),
        "only unparsable": (["--input", str(unparsable)], "no usable music: all 3 files"),
        "unknown config": (["--input", str(good.parent), "--config", "jazz_fusion"],
                           "unknown model configuration 'jazz_fusion'"),
        "unknown kind": (["--input", str(good.parent), "--kind", "vocals"], "unknown kind"),
        "bad fraction": (["--input", str(good.parent), "--validation-fraction", "1"],
                         "validation fraction"),
        "not a number": (["--input", str(good.parent), "--seed", "x"], "invalid int value"),
        "not music": (["--input", str(write_text(tmp_path / "x.txt", "hi"))],
                      "not a music file"),
        "zip slip only": (["--input", str(slip_only)], "zip slip"),
    }


@pytest.mark.parametrize("case", ["missing input", "empty folder", "only unparsable",
                                  "unknown config", "unknown kind", "bad fraction",
                                  "not a number", "not music", "zip slip only"])
def test_bad_runs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case,
                                                         private_tempdir):
    args, message = usage_cases(tmp_path)[case]
    before = all_files(tmp_path)
    out = tmp_path / "data" / "x"

    status = main(["prepare", "--name", "x", "--out", str(out), *args])

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err
    assert all_files(tmp_path) == before  # no out dir, no staging dir, no temp leftovers


def test_out_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path, capsys):
    good = write_midi(tmp_path / "in" / "g.mid", pitched=4)
    taken = write_text(tmp_path / "taken", "keep me")
    foreign = tmp_path / "foreign"
    write_text(foreign / "thesis.tex", "keep me too")

    assert main(["prepare", "--name", "x", "--input", str(good), "--out", str(taken)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert taken.read_text() == "keep me"

    assert main(["prepare", "--name", "x", "--input", str(good), "--out", str(foreign)]) == 2
    assert "not a prepared corpus" in capsys.readouterr().err
    assert all_files(foreign) == {"thesis.tex"}

    assert main(["prepare", "--name", "x", "--input", str(tmp_path / "in"),
                 "--out", str(tmp_path)]) == 2
    assert "holds the input" in capsys.readouterr().err


def test_a_failed_write_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    good = write_midi(tmp_path / "in" / "g.mid", pitched=4)
    out = tmp_path / "new" / "deeper" / "out"

    def fail(folder, result, spooled):
        (folder / "train.tfrecord").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prepare_module, "_write_tfrecords", fail)
    status = main(["prepare", "--name", "x", "--input", str(good), "--out", str(out)])

    assert status == 2
    assert "No space left on device" in capsys.readouterr().err
    assert all_files(tmp_path) == {"in", "in/g.mid"}  # the parents it made are gone too


def test_rerun_replaces_an_earlier_corpus(tmp_path, capsys):
    out = tmp_path / "data" / "piano"
    first = write_midi(tmp_path / "a" / "first.mid", pitched=4)
    second = write_midi(tmp_path / "b" / "second.mid", pitched=6)

    assert main(["prepare", "--name", "p", "--input", str(first), "--out", str(out)]) == 0
    assert main(["prepare", "--name", "p", "--input", str(second), "--out", str(out)]) == 0

    manifest = read_manifest(out)
    assert [e["source"] for e in manifest["files"]] == ["second.mid"]
    assert all_files(tmp_path / "data") == {"piano"} | {f"piano/{n}" for n in (
        "train.tfrecord", "validation.tfrecord", "manifest.json", "report.md")}


# ----- splits --------------------------------------------------------------------------------


def test_split_is_deterministic_by_seed_and_by_file(tmp_path):
    folder = tmp_path / "many"
    for i in range(10):
        write_midi(folder / f"piece{i:02d}.mid", pitched=3 + i)

    def splits(out: str, seed: int) -> dict[str, str]:
        result = prepare_corpus("m", [folder], tmp_path / out, validation_fraction=0.2, seed=seed)
        return {r.source: r.split for r in result.files}

    first, again = splits("one", 7), splits("two", 7)
    assert first == again
    assert sorted(first.values()).count("validation") == 2
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (
        tmp_path / "two" / "manifest.json").read_bytes()
    assert (tmp_path / "one" / "train.tfrecord").read_bytes() == (
        tmp_path / "two" / "train.tfrecord").read_bytes()
    others = [splits(f"seed{seed}", seed) for seed in (1, 2, 3)]
    assert any(other != first for other in others)


def test_one_file_goes_to_train_with_a_warning_and_two_files_split(tmp_path, capsys):
    one = write_midi(tmp_path / "one" / "only.mid", pitched=4)
    result = prepare_corpus("one", [one], tmp_path / "out1")
    assert [r.split for r in result.used] == ["train"]
    assert any("no validation data" in w for w in result.warnings)
    assert "no validation data" in (tmp_path / "out1" / "report.md").read_text()
    assert read_prepared(tmp_path / "out1", "validation") == []

    write_midi(tmp_path / "two" / "a.mid", pitched=4)
    write_midi(tmp_path / "two" / "b.mid", pitched=5)
    result = prepare_corpus("two", [tmp_path / "two"], tmp_path / "out2")
    assert sorted(r.split for r in result.used) == ["train", "validation"]
    assert result.warnings == []


# ----- hostile archives ---------------------------------------------------------------------


def test_zip_slip_archive_is_refused_and_nothing_escapes(tmp_path, capsys, private_tempdir):
    good = write_midi(tmp_path / "src" / "good.mid", pitched=4)
    nested = tmp_path / "up1" / "up2" / "uploads"
    slip = make_zip(nested / "slip.zip", {
        "fine.mid": good, "../evil.mid": good, "../../evil2.mid": good,
    })
    backslash = make_zip(nested / "backslash.zip", {"..\\evil3.mid": good})
    absolute = make_zip(nested / "absolute.zip", {"/tmp/evil4.mid": good})
    folder = tmp_path / "fine"
    write_midi(folder / "ok.mid", pitched=5)
    out = nested / "out"

    status = main(["prepare", "--name", "x", "--input", str(slip), str(backslash),
                   str(absolute), str(folder), "--out", str(out)])

    assert status == 0, capsys.readouterr().err
    files = {e["source"]: e for e in read_manifest(out)["files"]}
    for archive in ("slip.zip", "backslash.zip", "absolute.zip"):
        assert files[archive]["reason_code"] == "unsafe_archive"
        assert "zip slip" in files[archive]["reason"]
    assert "'../evil.mid'" in files["slip.zip"]["reason"]
    assert files["ok.mid"]["status"] == "used"
    assert "slip.zip" in (out / "report.md").read_text()
    # Nothing named evil anywhere: not beside the archive, not in its parents, not in temp.
    assert not [p for p in tmp_path.rglob("*evil*")]
    assert not list(tmp_path.parent.glob("*evil*"))
    assert not Path("/tmp/evil4.mid").exists()
    assert list(private_tempdir.iterdir()) == []
    assert all_files(nested) == {"slip.zip", "backslash.zip", "absolute.zip", "out",
                                 "out/train.tfrecord", "out/validation.tfrecord",
                                 "out/manifest.json", "out/report.md"}


def test_zip_bomb_is_refused_by_compression_ratio(tmp_path, capsys, private_tempdir):
    bomb = make_zip(tmp_path / "bomb.zip", {"huge.mid": bytes(50 << 20)})
    assert bomb.stat().st_size < 200_000
    folder = tmp_path / "fine"
    write_midi(folder / "ok.mid", pitched=5)
    out = tmp_path / "out"

    status = main(["prepare", "--name", "x", "--input", str(bomb), str(folder),
                   "--out", str(out)])

    assert status == 0
    entry = next(e for e in read_manifest(out)["files"] if e["source"] == "bomb.zip")
    assert entry["reason_code"] == "unsafe_archive"
    assert "zip bomb" in entry["reason"] and "50.0 MiB" in entry["reason"]
    assert list(private_tempdir.iterdir()) == []


def test_archive_over_the_total_size_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1000)
    archive = make_zip(tmp_path / "big.zip", {"a.mid": os.urandom(1500)},
                       compression=zipfile.ZIP_STORED)
    with pytest.raises(archives.UnsafeArchiveError, match="would unpack to"):
        archives.check_zip(archive)
    not_a_zip = write_corrupt(tmp_path / "fake.zip")
    with pytest.raises(archives.UnsafeArchiveError, match="not a valid zip"):
        archives.check_zip(not_a_zip)


@pytest.mark.parametrize("name,problem", [
    ("../x.mid", "'..'"), ("a/../../x.mid", "'..'"), ("/etc/x.mid", "absolute"),
    ("..\\x.mid", "'..'"), ("C:\\x.mid", "drive letter"), ("a/b/x.mid", None),
    ("a/..b/x..mid", None),
])
def test_unsafe_entry_names(name, problem):
    found = archives.unsafe_entry_name(name)
    assert (found is None) if problem is None else (problem in found)


def test_help_runs_as_a_module():
    completed = subprocess.run(
        [sys.executable, "-m", "training", "prepare", "--help"], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    for text in ("--name", "--input", "--out", "--config", "--kind", "--validation-fraction",
                 "--seed", "examples:", "performance_with_dynamics"):
        assert text in completed.stdout


# ----- metric styles: the beat comes from each file -----------------------------------------


def write_groove(path: Path, bpm: float, beats: list[float], numerator: int = 4,
                 late_seconds: float = 0.0, changes_to: tuple[int, int] | None = None) -> Path:
    """A drum file at `bpm` with hits on `beats` (quarter notes), its time
    signature, optionally every hit `late_seconds` late, and optionally a
    metre change after two bars."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(numerator, 4, 0.0))
    if changes_to:
        midi.time_signature_changes.append(
            pretty_midi.TimeSignature(*changes_to, 2 * numerator * 60 / bpm))
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    for beat in beats:
        start = beat * 60 / bpm + late_seconds
        kit.notes.append(pretty_midi.Note(velocity=100, pitch=36 if beat % 4 == 0 else 42,
                                          start=start, end=start + 0.05))
    midi.instruments.append(kit)
    midi.write(str(path))
    return path


def test_metric_prepare_reads_each_files_beat_and_skips_free_tempo_music(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    sixteenths = [i / 4 for i in range(64)]  # four bars of sixteenths
    write_groove(folder / "groove97.mid", 97, sixteenths)
    write_groove(folder / "late.mid", 140, sixteenths, late_seconds=0.012)  # humanised
    write_groove(folder / "shuffle.mid", 120, [i / 3 for i in range(48)])  # triplets
    rng = __import__("random").Random(3)
    write_groove(folder / "free.mid", 120, sorted(rng.uniform(0, 16) for _ in range(64)))
    write_groove(folder / "five.mid", 120, sixteenths, numerator=5)
    write_groove(folder / "changes.mid", 120, sixteenths, changes_to=(3, 4))
    result = prepare_corpus("beats", [folder], tmp_path / "data", config_id="metric_drums",
                            kind="drums", validation_fraction=0)
    records = {record.source: record for record in result.files}
    for name in ("groove97.mid", "late.mid", "shuffle.mid"):
        assert records[name].used and records[name].grid_fit == 1.0, records[name]
        assert records[name].metre == "4/4"
    assert records["free.mid"].reason_code == "no_beat"
    assert "free-tempo" in records["free.mid"].reason
    assert records["five.mid"].reason_code == "no_beat" and "5/4" in records["five.mid"].reason
    changed = records["changes.mid"]
    assert changed.used and any("time signature changes" in w for w in changed.warnings)
    assert changed.seconds == pytest.approx(4.0, abs=0.06)  # cut after two 4/4 bars at 120
    report = (tmp_path / "data" / "report.md").read_text()
    assert "| metre | on the grid |" in report and "| 4/4 | 100% |" in report
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert {f["source"]: f["grid_fit"] for f in manifest["files"]}["groove97.mid"] == 1.0
