"""Every benchmark in benchmarks/ runs here on tiny arguments, so that none
breaks silently when the library under it changes.

Benchmarks print figures and assert nothing, and these are not timed tests:
each runs its script as a person would (`python benchmarks/NAME.py ...` from
the project root, in a process of its own, with a timeout), on arguments just
large enough to take its whole path, and checks that it ends well and prints
the lines of figures it should. The figures' values are not checked. Servers
stay on 127.0.0.1; temporary folders go under the test's own. Those that
take over about 20 s (a server, training, corpora, a radio stream in real
time) are marked slow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest

from datasets.system import DEBIAN_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"
NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
"""A figure as the benchmarks print it: 12, 1,234 or 0.125."""


def run_benchmark(name: str, *args, tmp_path: Path, timeout: float = 300,
                  env: dict[str, str] | None = None, unavailable: str | None = None) -> str:
    """Runs benchmarks/`name`.py with `args` from the project root and returns
    what it printed; fails the test if it does not end, or ends badly (skips
    it if it ends saying `unavailable`). Its temporary folders (and any
    server's instance folder) go under `tmp_path`; `env` adds to its
    environment."""
    environment = dict(os.environ, TMPDIR=str(tmp_path), **(env or {}))
    # In a process group of its own, so that a server it started goes with it
    # if it has to be stopped.
    process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"),
                                *map(str, args)], cwd=ROOT, env=environment, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException as error:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        if isinstance(error, subprocess.TimeoutExpired):
            pytest.fail(f"{name}.py ran past {timeout:.0f} s; it printed:\n{stdout[-3000:]}\n"
                        f"{stderr[-3000:]}")
        raise
    if process.returncode and unavailable and unavailable in stderr:
        pytest.skip(stderr.strip().splitlines()[-1])
    assert process.returncode == 0, (f"{name}.py exited with {process.returncode}:\n"
                                     f"{stdout[-3000:]}\n{stderr[-5000:]}")
    return stdout


def assert_printed(output: str, *patterns: str) -> None:
    """Each regular expression matches a line of `output`."""
    for pattern in patterns:
        assert re.search(pattern, output, re.MULTILINE), \
            f"no line matches {pattern!r} in:\n{output[-3000:]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_web_bundles(tmp_path_factory) -> Path:
    """A bundles folder holding only "piano" (Magenta's 2x64 conditioned
    reference bundle) and the shipped scorer, for the benchmarks that start the
    website: it loads and compiles in seconds where the shipped styles take
    minutes on a small machine."""
    from conftest import magenta_bundle_path

    folder = tmp_path_factory.mktemp("web-bundles")
    shutil.copy(magenta_bundle_path("multiconditioned_performance_with_dynamics"),
                folder / "piano.mag")
    shutil.copy(BUNDLES / "scoring.json", folder / "scoring.json")
    return folder


KICK, SNARE, HAT = 36, 38, 42


def write_band_piece(path: Path, bass_root: int, chord_root: int, bars: int) -> None:
    """`bars` bars of 4/4 at 120 BPM: kick, snare and hats, a bass note a beat
    and a held chord a bar (MIDI numbers from the roots)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    bass = pretty_midi.Instrument(program=33)
    keys = pretty_midi.Instrument(program=0)
    for bar in range(bars):
        for beat in range(4):
            start = (bar * 4 + beat) * 0.5
            kit.notes.append(pretty_midi.Note(100, KICK if beat % 2 == 0 else SNARE,
                                              start, start + 0.1))
            kit.notes.append(pretty_midi.Note(80, HAT, start + 0.25, start + 0.35))
            bass.notes.append(pretty_midi.Note(90, bass_root + 2 * (beat % 2), start,
                                               start + 0.4))
        for pitch in (chord_root, chord_root + 4, chord_root + 7):
            keys.notes.append(pretty_midi.Note(70, pitch, bar * 2.0, bar * 2.0 + 1.8))
    midi.instruments += [kit, bass, keys]
    midi.write(str(path))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """`tiny_corpus(name)`: data/`name`, a prepared band corpus of two short
    pieces (one for training, one held out) whose notes depend on the name;
    made once per name, all in one data/ folder."""
    root = tmp_path_factory.mktemp("corpora")

    def make(name: str) -> Path:
        out = root / "data" / name
        if not out.exists():
            from training.prepare import prepare_corpus

            music = root / "music" / name
            music.mkdir(parents=True)
            shift = sum(map(ord, name)) % 12
            for take in range(2):
                write_band_piece(music / f"{name}{take}.mid", 36 + shift, 55 + shift + take,
                                 bars=4 + take)
            prepare_corpus(name, [music], out, config_id="metric_band", kind="band",
                           validation_fraction=0.5, seed=0)
        return out

    return make


# ----- the sampler, scoring and audio ------------------------------------------------


def test_generate_speed(tmp_path):
    output = run_benchmark("generate_speed", "--bundle", BUNDLES / "piano.mag", "--seconds", 2,
                           "--batches", 1, "--rounds", 1, "--repeats", 1, tmp_path=tmp_path)
    assert_printed(output, r"^median of 1 x 1 runs",
                   r"^code\s+bundle\s+seconds\s+batch\s+ms/s music\s+ms/event\s+s/piece\s+events$",
                   rf"^\S+\s+piano\s+2\s+1(\s+{NUMBER}){{4}}$")


def test_batch_invariance(tmp_path):
    output = run_benchmark("batch_invariance", "--bundle", BUNDLES / "drums.mag", "--pieces", 3,
                           "--seconds", 2, "--batch", 2, tmp_path=tmp_path)
    assert_printed(output, r"^bundle\s+pieces\s+differ\s+events compared$",
                   r"^drums\s+3\s+\d+\s+\d+$")


def test_edit_joins(tmp_path):
    output = run_benchmark("edit_joins", "--bundle", BUNDLES / "rock.mag", "--edits", 2,
                           "--seconds", 6, "--bars", 1, "--parts", tmp_path=tmp_path)
    assert_printed(output, r"^style\s+edits\s+notes kept\s+events kept\s+join new\s+join old"
                           r"\s+no worse\s+s/edit$",
                   rf"^rock\s+2\s+2\s+2(\s+{NUMBER}){{2}}\s+\d\s+{NUMBER}$")


def test_render_speed(tmp_path):
    output = run_benchmark("render_speed", "--seconds", 2, "--repeats", 1, tmp_path=tmp_path,
                           unavailable="audio rendering is unavailable")
    assert_printed(output, r"^piece: \S+\.mid from \S+piano\.mag, \d+ notes, \d+ MIDI bytes$",
                   rf"^audio: {NUMBER} s, WAV {NUMBER} MB$",
                   rf"^render: median {NUMBER} s, min {NUMBER} s, realtime factor {NUMBER}x$")


def test_beat_figures(tmp_path):
    output = run_benchmark("beat_figures", BUNDLES / "drums.mag", "--pieces", 1, "--loops", 1,
                           "--seconds", 5, tmp_path=tmp_path)
    assert_printed(output,
                   rf"^drums: grid {NUMBER} \(min {NUMBER}\), downbeat kick {NUMBER} over 1 "
                   r"pieces of 5 s$",
                   *(rf"^  --bars 8 at {bpm} BPM: last note-off at tick \d+, tracks end at "
                     rf"\[[\d, ]+\], bar 8 ends at \d+; {NUMBER} s$" for bpm in (60, 97, 180)),
                   r"^  loops: 1 4-bar loops, each repeated 4 times: .* in \d+; \d+ notes sound "
                   r"across a join$")


def write_marked_corpus(folder: Path, name: str) -> None:
    """A corpus folder as `python -m datasets build` makes one: a band piece
    for training and one held out, each with a chord symbol (text event) and a
    section marker per bar, as mma's renders have, and manifest.json."""
    import mido

    folder.mkdir(parents=True)
    entries = []
    for take, split in enumerate(("train", "validation")):
        path = folder / f"take{take}.mid"
        write_band_piece(path, 36, 48, bars=4)
        midi = mido.MidiFile(str(path))
        bar = 4 * midi.ticks_per_beat
        marks = [mido.MetaMessage("marker", text="Intro" if index == 0 else "A", time=0)
                 for index in range(4)]
        marks = [message for index, marker in enumerate(marks)
                 for message in (marker.copy(time=bar if index else 0),
                                 mido.MetaMessage("text", text="C", time=0))]
        midi.tracks[0][:0] = marks
        midi.save(str(path))
        entries.append({"file": path.name, "source": "test", "licence": "CC0-1.0",
                        "split": split, "family": f"take{take}", "kind": "band"})
    (folder / "manifest.json").write_text(json.dumps(
        {"format": "perfrnn-corpus/1", "name": name, "files": entries}))


def test_song_figures(tmp_path):
    """Generated drums against a tiny marked drums corpus (so that chords and
    sections take their path too)."""
    write_marked_corpus(tmp_path / "corpus", "drums")
    output = run_benchmark("song_figures", "--bundle", BUNDLES / "drums.mag", "--pieces", 1,
                           "--seconds", 5, "--real", tmp_path / "corpus", "--real-pieces", 1,
                           "--onset-grid", "--out", tmp_path / "figures.json",
                           tmp_path=tmp_path)
    assert_printed(output, r"^\| figure \| drums generated \| drums real \|$",
                   r"^\| pieces \| 1 \| 1 \|$",
                   rf"^\| drum_bar_repeat \| {NUMBER} \| 1\.000 \|$",
                   rf"^\| chord_tone_share \| - \| {NUMBER} \|$",
                   rf"^\| main_drum_repeat \| {NUMBER} \| 1\.000 \|$",  # a song has sections
                   r"^onsets moved to the nearest sixteenth or eighth triplet; generated: 1 "
                   r"pieces of 5 s per bundle; real: 1 held-out files per corpus$")
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert [(c["style"], c["source"]) for c in figures["columns"]] == [
        ("drums", "generated"), ("drums", "real")]
    assert figures["columns"][1]["per_piece"][0]["file"].endswith("take1.mid")


@pytest.mark.slow
def test_score_figures(tmp_path, tiny_corpus):
    """With the independent classifier, trained on tiny corpora of every style
    the script names."""
    spec = spec_from_file_location("score_figures", ROOT / "benchmarks" / "score_figures.py")
    script = module_from_spec(spec)
    spec.loader.exec_module(script)
    for folder in {**script.STYLES, **script.OTHER_STYLES}.values():
        data = tiny_corpus(folder).parent
    output = run_benchmark("score_figures", "--pieces", 1, "--seconds", 5, "--styles", "drums",
                           "--data", data, "--out", tmp_path / "figures.json", tmp_path=tmp_path)
    assert_printed(output, *(
        rf"^drums\s+{re.escape(way)}\s+style match {NUMBER} \(real {NUMBER}\) fidelity "
        rf"{NUMBER} independent {NUMBER} overall {NUMBER} breaking the rule \d+ \(silence max "
        rf"{NUMBER} s, limit {NUMBER}; one pitch max {NUMBER} s\) repairs \d+ \d+ s$"
        for way in ("raw", "N=1", "N=8")),
        rf"^drums\s+scorer {NUMBER} ms median, {NUMBER} ms max a 5 s piece$")
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert {"raw", "N=1", "N=8", "scorer_ms_median"} <= set(figures["drums"])


@pytest.mark.slow
def test_radio_figures(tmp_path):
    output = run_benchmark("radio_figures", "--minutes", 0.1, "--styles", "rock", "--trials", 1,
                           "--seconds", 2, "--counts", 1, "--out", tmp_path / "radio.json",
                           tmp_path=tmp_path)
    assert_printed(output,
                   rf"^rock: {NUMBER} min in \d+ chunks, decoded {NUMBER} s; longest quiet "
                   rf"{NUMBER} s \(longest rest in its notes {NUMBER} s\); chunked against one "
                   rf"go: {NUMBER} at most \(peak {NUMBER}\); CPU {NUMBER} s a second of audio$",
                   rf"^tempo change heard after {NUMBER} s median, {NUMBER} s at most \(1 changes",
                   rf"^1 streams: least lead {NUMBER} s \((no underrun|UNDERRUN)\), {NUMBER} "
                   rf"cores busy, CPU {NUMBER} s a second of audio$")
    assert (tmp_path / "radio.json").exists()


# ----- training ----------------------------------------------------------------------


def test_train_speed(tmp_path):
    output = run_benchmark("train_speed", "--layers", 8, "--batch", 2, "--length", 16,
                           "--repeats", 1, "--end-to-end-steps", 3, "--device", "cpu",
                           tmp_path=tmp_path)
    assert_printed(output, r"^batch 2 x 16 events; step figures are medians of 1 steps$",
                   r"^model\s+device\s+xla\s+step events/s\s+end-to-end events/s$",
                   rf"^8\s+CPU\s+off\s+{NUMBER}\s+{NUMBER}$")


def test_note_length_fidelity(tmp_path, tiny_corpus):
    output = run_benchmark("note_length_fidelity",
                           "--style", f"rock={tiny_corpus('rock')}:{BUNDLES / 'rock.mag'}",
                           "--real", f"jazz={tiny_corpus('jazz')}", "--pieces", 1,
                           "--seconds", 5, tmp_path=tmp_path)
    assert_printed(output, rf"^rock: caps \(s\) {NUMBER}(, {NUMBER})*; heard as rock: \d+% as "
                   r"generated, \d+% with notes cut at the 75th percentile \(most heard: ")


needs_mma = pytest.mark.skipif(
    not Path(DEBIAN_PACKAGES["mma"]).exists(),
    reason="Debian's mma is missing: run datasets/install_system_packages.sh")


@pytest.mark.slow
@needs_mma
def test_user_style(tmp_path, tiny_corpus):
    """Fine-tunes the shipped rock for two steps on one ragtime take."""
    output = run_benchmark("user_style", "--parent", BUNDLES / "rock.mag",
                           "--style", f"jazz={tiny_corpus('jazz')}", "--files", 1,
                           "--held-out", 2, "--pieces", 1, "--steps", 2, "--samples", 1,
                           "--work", tmp_path / "work", tmp_path=tmp_path)
    assert_printed(output,
                   rf"^1 uploaded takes, quick preset from \S+rock\.mag: {NUMBER} min \(prepare, "
                   r"2 steps, evaluate, export\)$",
                   rf"^held-out NLL of \d+ ragtime takes: parent {NUMBER} \(style .*\), new "
                   rf"style {NUMBER} nats/event$",
                   r"^classifier \(real music, cross-validated \d+%\) hears 1 generated pieces "
                   r"as: .*; ragtime \d+%$")


# ----- the website on 127.0.0.1 ------------------------------------------------------


@pytest.mark.slow
def test_web_latency(tmp_path, tiny_web_bundles):
    # two codes in turn (here this checkout twice), as a before/after run is made
    output = run_benchmark("web_latency", "--port", free_port(), "--seconds", 5,
                           "--requests", 1, "--users", 2, "--requests-per-user", 1,
                           "--no-audio", "--set", f"BUNDLES_DIR={tiny_web_bundles}",
                           "--code", ROOT, "--code", ROOT, tmp_path=tmp_path)
    assert_printed(output, rf"^--- round 1: server of {re.escape(str(ROOT))}$",
                   r"^server at http://127\.0\.0\.1:\d+; styles: piano$",
                   r"^server RSS with every style loaded: \d+ MiB",
                   rf"^one user, piano 5 s, quality default, 1 requests: median {NUMBER} s, "
                   rf"min {NUMBER} s, max {NUMBER} s",
                   rf"^server CPU, one user \(with its render processes\): {NUMBER} "
                   r"core-seconds a request$",
                   rf"^2 users at once, 2 requests in {NUMBER} s: p50 {NUMBER} s, p95 {NUMBER} s",
                   rf"^server CPU \(with its render processes\): {NUMBER} core-seconds a "
                   rf"request, {NUMBER} cores busy on average$",
                   r"^server RSS after the run: \d+ MiB$",
                   r"^medians of 1 round\(s\)",
                   rf"^{re.escape(str(ROOT))}: one_user_median {NUMBER} \[{NUMBER}, {NUMBER}\]; "
                   rf"one_user_cpu {NUMBER} .*; p95 {NUMBER} .*crowd_cpu {NUMBER}")


@pytest.mark.slow
def test_web_load(tmp_path, tiny_web_bundles):
    output = run_benchmark("web_load", "--clients", 2, "--seconds", 5, tmp_path=tmp_path,
                           env={"BUNDLES_DIR": str(tiny_web_bundles)})
    assert_printed(output, r"^2 clients and one abusive one for 5 s on 127\.0\.0\.1",
                   *(rf"^{kind}: \d+ requests \(.*\); latency median \d+ ms, p95 \d+ ms; "
                     r"429/503 without Retry-After: \d+; pieces finished: \d+$"
                     for kind in ("well-behaved", "abusive")),
                   r"^server memory \(RSS\): \d+ MiB before, peak \d+ MiB, \d+ MiB after; "
                   r"server still up: (True|False)$")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "sqs"])
def test_kill_recovery(tmp_path, tiny_web_bundles, backend):
    """One kill of the server (local) or of a worker (sqs, on moto); seed 3
    kills early (2.3 s, or 1.3 s after a worker took a job)."""
    output = run_benchmark("kill_recovery", "--kills", 1, "--jobs", 2, "--seconds", 5,
                           "--seed", 3, "--backend", backend, tmp_path=tmp_path,
                           env={"BUNDLES_DIR": str(tiny_web_bundles)})
    killed = "kills" if backend == "local" else "worker kills"
    assert_printed(output, r"^kill 1/1: states \{.*\}$",
                   rf"^1 {killed} in \d+ s, \d+ jobs: \{{.*\}}$",
                   r"lost \(no record\): \d+$", r"^why jobs ended without music: \{.*\}$",
                   r"^result (files|objects): \{.*\}$")


@pytest.mark.slow
def test_fuzz_api(tmp_path, tiny_web_bundles):
    output = run_benchmark("fuzz_api", "--examples", 1, tmp_path=tmp_path,
                           env={"BUNDLES_DIR": str(tiny_web_bundles)})
    assert_printed(output, r"^fuzzed \d+ cases of \d+ operations; statuses: \{.*\}$",
                   r"^\d+ s; server RSS at the end: \d+ MiB; server still up: (True|False)$")


def test_every_benchmark_has_a_tiny_run_here():
    """A script added to benchmarks/ without a run in this file fails here
    (local_server.py is the servers' helper module, not a benchmark)."""
    scripts = {path.stem for path in (ROOT / "benchmarks").glob("*.py")} - {"local_server",
                                                                           "__init__"}
    source = Path(__file__).read_text(encoding="utf-8")
    missing = sorted(name for name in scripts if f'run_benchmark("{name}"' not in source)
    assert not missing, f"benchmarks without a tiny run in tests/test_benchmarks.py: {missing}"


def test_store_cost(tmp_path):
    output = run_benchmark("store_cost", "--seconds", 2, "--repeats", 1, tmp_path=tmp_path)
    assert_printed(output, r"^piece: \S+\.mid from \S+piano\.mag, \d+ notes, 1 parts; CPU "
                           r"seconds, median of 1$",
                   rf"^job before \(a piano roll.*\): {NUMBER} s$",
                   rf"^job now \(notes JSON, NoteSequence, events\): {NUMBER} s$",
                   rf"^first download now: .*pianoroll {NUMBER} s, stems {NUMBER} s$")
