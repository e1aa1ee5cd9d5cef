"""Offline builders, run for real with a small --limit on the installed Debian packages."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import mido
import pretty_midi
import pytest

from datasets import mma
from datasets.cli import main
from datasets.manifest import read_manifest
from datasets.system import DEBIAN_PACKAGES

ROOT = Path(__file__).resolve().parents[1]


def needs(*packages: str):
    missing = [p for p in packages if not Path(DEBIAN_PACKAGES[p]).exists()]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"Debian packages {missing} missing: run datasets/install_system_packages.sh",
    )


def check_corpus(out: Path, style: str, kind: str) -> dict:
    """Checks the manifest against the files and returns it."""
    manifest = read_manifest(out)
    assert manifest["format"] == "perfrnn-corpus/1"
    assert manifest["name"] == style and manifest["builder"] == f"datasets build {style}"
    assert manifest["files"], "no files built"
    family_splits: dict[str, set[str]] = defaultdict(set)
    for entry in manifest["files"]:
        assert set(entry) >= {"file", "source", "licence", "split", "family", "kind"}
        assert entry["kind"] == kind
        assert entry["licence"] in manifest["licences"]
        assert entry["tempo_bpm"] > 0 and entry["seconds"] > 0
        family_splits[entry["family"]].add(entry["split"])
        path = out / entry["file"]
        assert path.is_file()
        mid = mido.MidiFile(path)
        pm = pretty_midi.PrettyMIDI(str(path))
        assert sum(len(i.notes) for i in pm.instruments) > 0
        channels = {m.channel for t in mid.tracks for m in t if m.type == "note_on"}
        if kind == "drums":
            assert channels == {9}, f"{entry['file']} has notes off channel 10: {channels}"
        if kind == "band":
            assert 9 in channels and channels - {9}, entry["file"]
        if kind == "pitched":
            assert 9 not in channels
    assert all(len(splits) == 1 for splits in family_splits.values()), "family in both splits"
    assert {e["split"] for e in manifest["files"]} == {"train", "validation"}
    for name in ("README.md", "LICENCES.md", ".gitignore"):
        assert (out / name).is_file()
    return manifest


@needs("mma", "freedoom")
def test_build_drums(tmp_path):
    out = tmp_path / "drums"
    code = main(["build", "drums", "--out", str(out), "--limit", "6", "--seed", "3",
                 "--validation-fraction", "0.3", "--jobs", "2"])
    assert code == 0
    manifest = check_corpus(out, "drums", "drums")
    groups = {e["file"].split("/")[0] for e in manifest["files"]}
    assert groups == {"mma", "freedoom"}
    assert set(manifest["licences"]) == {"GPL-2.0-or-later", "BSD-3-Clause"}


@needs("mma")
def test_mma_takes_are_reproducible_and_vary():
    grooves = [g for g in mma.read_catalogue() if g.family == "stdlib/8beat"]
    main_groove = next(g for g in grooves if g.name == "8BEAT")
    first = mma.plan_take(main_groove, grooves, 1, 0, mma.ROCK_PROGRESSIONS)
    assert first == mma.plan_take(main_groove, grooves, 1, 0, mma.ROCK_PROGRESSIONS)
    second = mma.plan_take(main_groove, grooves, 2, 0, mma.ROCK_PROGRESSIONS)
    assert (first.seed, first.tempo_bpm) != (second.seed, second.tempo_bpm)
    data = mma.render_take(first)
    assert data == mma.render_take(first)
    mid = mido.MidiFile(file=io.BytesIO(data))
    tempo = next(m.tempo for t in mid.tracks for m in t if m.type == "set_tempo")
    assert round(mido.tempo2bpm(tempo)) == first.tempo_bpm
    assert "Groove stdlib/8beat:8BEATINTRO" in mma.take_script(first)
    assert mma.style_family("casio/heavymetal") == "rock"
    assert mma.style_family("zoom/dnb") == "electronic"
    assert mma.style_family("stdlib/bossanova") == "latin"
    assert mma.style_family("stdlib/jazzbossa") == "latin"  # the first style's word wins
    assert mma.style_family("stdlib/jazzrock") == "rock"
    assert mma.style_family("stdlib/bebop") == "jazz"
    assert mma.style_family("stdlib/countryblues") == "blues"
    assert mma.style_family("stdlib/countrywaltz") == "other"  # styles are in 4/4
    assert mma.style_family("stdlib/polka") == "other"


@needs("mma", "freedoom")
def test_build_rock(tmp_path):
    out = tmp_path / "rock"
    assert main(["build", "rock", "--out", str(out), "--limit", "6", "--takes", "1",
                 "--validation-fraction", "0.3", "--jobs", "2"]) == 0
    manifest = check_corpus(out, "rock", "band")
    for entry in manifest["files"]:
        pm = pretty_midi.PrettyMIDI(str(out / entry["file"]))
        programs = {i.program for i in pm.instruments if not i.is_drum and i.notes}
        assert programs & set(range(32, 40)), f"{entry['file']} has no bass"


@needs("mma", "freedoom", "planetblupi-music-midi", "lmms-common")
def test_build_electronic(tmp_path):
    out = tmp_path / "electronic"
    assert main(["build", "electronic", "--out", str(out), "--limit", "8",
                 "--validation-fraction", "0.3", "--jobs", "2"]) == 0
    manifest = check_corpus(out, "electronic", "band")
    groups = {e["file"].split("/")[0] for e in manifest["files"]}
    assert {"mma", "planetblupi", "lmms"} <= groups


def test_build_piano_from_music21(tmp_path):
    out = tmp_path / "piano"
    assert main(["build", "piano", "--out", str(out), "--sources", "music21", "--limit", "3",
                 "--validation-fraction", "0.4", "--jobs", "2"]) == 0
    manifest = check_corpus(out, "piano", "pitched")
    assert {e["licence"] for e in manifest["files"]} == {"music21-corpus"}
    for entry in manifest["files"]:
        pm = pretty_midi.PrettyMIDI(str(out / entry["file"]))
        assert {i.program for i in pm.instruments} == {0}


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["build", "piano", "--out", str(a_file), "--sources", "music21",
                 "--limit", "1"]) == 2
    assert main(["build", "piano", "--sources", "nope", "--out", str(tmp_path / "p")]) == 2
    assert main(["build", "polka"]) == 2
    assert main(["build", "drums", "--validation-fraction", "1.5"]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 4
    assert "is a file" in errors[0] and "unknown source nope" in errors[1]
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for word in ("piano", "drums", "rock", "electronic", "maestro", "groove", "lakh",
                 "CC-BY-NC-SA-4.0", "GPL-2.0-or-later", "BSD-3-Clause"):
        assert word in listing


def test_python_dash_m_help_runs():
    result = subprocess.run([sys.executable, "-m", "datasets", "--help"], cwd=ROOT,
                            capture_output=True, text=True, env=dict(os.environ), check=False)
    assert result.returncode == 0
    assert "build" in result.stdout and "fetch" in result.stdout
