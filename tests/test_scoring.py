"""The scorer (perfrnn.scoring), best-of-N candidates, the silence cap and repair."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import music21
import numpy as np
import pytest
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from perfrnn.errors import PerfRNNError
from perfrnn.music_io import read_music_file
from perfrnn.options import GenerationOptions, candidates_within_budget
from perfrnn.scoring import (
    SCORING_FILE,
    StyleReferences,
    StyleScorer,
    longest_one_pitch,
    longest_repetition,
    read_scoring_file,
    score_piece,
    silences,
    style_references,
)

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = ROOT / "bundles"


def _sequence(notes, total=None, qpm=120.0, drums=False) -> music_pb2.NoteSequence:
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(qpm=qpm)
    for pitch, start, end in notes:
        sequence.notes.add(pitch=pitch, start_time=start, end_time=end, velocity=80,
                           is_drum=drums)
    sequence.total_time = total if total is not None else max(n[2] for n in notes)
    return sequence


@pytest.fixture(scope="module")
def shipped():
    """The shipped classifier and references (bundles/scoring.json)."""
    classifier, references = read_scoring_file(BUNDLES / SCORING_FILE)
    assert classifier is not None and "piano" in classifier.styles
    return classifier, {style: StyleReferences.from_dict(data)
                        for style, data in references.items()}


@pytest.fixture(scope="module")
def real_excerpt():
    """30 s of real piano music no model was scored on here: Joplin, from music21."""
    sequence = read_music_file(str(music21.corpus.getWork("joplin/maple_leaf_rag")))
    excerpt = sequences_lib.extract_subsequence(sequence, 10.0, 40.0)
    excerpt.total_time = 30.0
    return excerpt


def test_silences_are_the_stretches_where_nothing_sounds():
    sequence = _sequence([(60, 1.0, 2.0), (64, 1.5, 3.0), (67, 5.0, 6.0)], total=8.0)
    assert silences(sequence) == [(0.0, 1.0), (3.0, 2.0), (6.0, 2.0)]


def test_one_pitch_runs_count_only_a_pitch_struck_again_alone():
    stuck = [(60, 2.0 + 0.25 * i, 2.2 + 0.25 * i) for i in range(20)]  # 2.0 to 6.95 s
    start, seconds = longest_one_pitch(_sequence([(48, 0.0, 1.0), *stuck, (62, 8.0, 9.0)]))
    assert start == pytest.approx(2.0) and seconds == pytest.approx(4.95)
    # the same repeats under a held note are not alone
    held = _sequence([(48, 1.9, 8.0), *stuck])
    assert longest_one_pitch(held)[1] == 0.0


def test_repetition_finds_a_short_pattern_repeated():
    pattern = [(60, 0.0), (64, 0.25), (67, 0.5)]
    notes = [(pitch, 1.0 + 0.75 * bar + offset, 1.2 + 0.75 * bar + offset)
             for bar in range(8) for pitch, offset in pattern]
    notes += [(n, 7.5 + 0.5 * i, 7.7 + 0.5 * i) for i, n in enumerate((62, 71, 65, 69))]
    start, seconds = longest_repetition(_sequence(notes))
    assert start == pytest.approx(1.0)
    assert seconds == pytest.approx(0.75 * 7 + 0.5 + 0.2)


def test_references_round_trip_and_refuse_malformed_data():
    references = StyleReferences(excerpts=3, silence_p99_seconds=0.8,
                                 one_pitch_longest_seconds=1.0, repetition_p99_seconds=5.0,
                                 polyphony_range=(1.5, 4.0), in_key_p5=0.8, on_beat_p5=None,
                                 real_style_match=0.7)
    assert StyleReferences.from_dict(json.loads(json.dumps(references.to_dict()))) == references
    with pytest.raises(PerfRNNError):
        StyleReferences.from_dict({"format": 99})
    with pytest.raises(PerfRNNError):
        StyleReferences.from_dict({**references.to_dict(), "silence_p99_seconds": "x"})


def test_references_measure_real_music(real_excerpt):
    references = style_references([real_excerpt], metric=False)
    assert references.excerpts == 1
    assert 0 < references.silence_p99_seconds < 2.0
    assert references.on_beat_p5 is None and references.in_key_p5 > 0.7
    low, high = references.polyphony_range
    assert 1.0 <= low <= high < 8


def _planted(excerpt, kind: str) -> music_pb2.NoteSequence:
    """The excerpt with a defect planted in it."""
    bad = music_pb2.NoteSequence()
    bad.CopyFrom(excerpt)
    if kind == "silence":  # 6 s of nothing from 12 s on
        for note in list(bad.notes):
            if note.end_time > 12.0 and note.start_time < 18.0:
                bad.notes.remove(note)
    elif kind == "stuck":  # one note hammered alone from 10 to 22 s
        for note in list(bad.notes):
            if note.end_time > 10.0 and note.start_time < 22.0:
                bad.notes.remove(note)
        for i in range(48):
            bad.notes.add(pitch=60, start_time=10.0 + 0.25 * i, end_time=10.2 + 0.25 * i,
                          velocity=80)
    else:  # off-key: notes moved a semitone up or down at random
        shifts = np.random.default_rng(0).choice([-1, 0, 1], len(bad.notes))
        for note, shift in zip(bad.notes, shifts):
            note.pitch += int(shift)
    return bad


@pytest.mark.parametrize("kind,defect", [("silence", "silence"), ("stuck", "one pitch"),
                                         ("off-key", None)])
def test_the_scorer_ranks_a_planted_bad_piece_below_a_real_excerpt(shipped, real_excerpt,
                                                                    kind, defect):
    classifier, references = shipped
    scorer = StyleScorer("piano", references["piano"], classifier)
    real, bad = scorer.score(real_excerpt), scorer.score(_planted(real_excerpt, kind))
    assert real.defect is None
    assert bad.overall < real.overall * 0.8
    if defect is not None:
        assert bad.defect is not None and bad.defect.kind == defect
    else:
        assert bad.in_key < real.in_key - 0.15


def test_a_style_without_references_scores_neutral(real_excerpt):
    score = score_piece(real_excerpt, None)
    assert score.overall is None and score.style is None and score.defect is None
    assert score.longest_silence > 0  # still measured
    assert StyleScorer("mine", None, None).neutral


@pytest.fixture(scope="module")
def piano_sampler():
    from perfrnn.bundle import read_bundle
    from perfrnn.sampler import Sampler

    return Sampler(read_bundle(BUNDLES / "piano.mag"), block_events=256)


def test_best_of_n_is_deterministic_and_never_worse_than_one(piano_sampler):
    options = GenerationOptions(seconds=8.0, seed=11, variations=2, candidates=4, repair=False)
    first, again = piano_sampler.generate(options), piano_sampler.generate(options)
    assert all(np.array_equal(a, b) for a, b in zip(first.events, again.events))
    overall = [score.overall for score in first.scores]
    assert overall == sorted(overall, reverse=True)  # best first
    one = piano_sampler.generate(dataclasses.replace(options, candidates=1))
    # candidate 0 of each variation is the piece one candidate gives: best-of-4 is at least it
    assert first.scores[0].overall >= max(score.overall for score in one.scores) - 1e-12


def test_candidates_keep_within_the_work_budget():
    assert candidates_within_budget(8, 1, 30.0) == 8
    assert candidates_within_budget(8, 4, 600.0) == 4  # 16 pieces of 10 minutes
    assert candidates_within_budget(8, 16, 600.0) == 1
    with pytest.raises(PerfRNNError, match="candidates"):
        GenerationOptions(candidates=9).validate()


@pytest.fixture(scope="module")
def drums():
    from perfrnn.bundle import read_bundle
    from perfrnn.scoring import scorer_for

    bundle = read_bundle(BUNDLES / "drums.mag")
    return bundle, scorer_for(bundle)


def test_the_silence_cap_keeps_silences_within_the_style(drums):
    from perfrnn.sampler import Sampler

    bundle, scorer = drums
    limit = scorer.references.silence_limit
    raw = Sampler(bundle, block_events=512, scorer=dataclasses.replace(scorer, references=None))
    capped = Sampler(bundle, block_events=512, scorer=scorer)
    options = GenerationOptions(seconds=30.0, seed=0, variations=8, repair=False)
    raw_longest = [scorer.score(s).longest_silence for s in raw.generate(options).sequences]
    capped_longest = [score.longest_silence for score in capped.generate(options).scores]
    assert max(raw_longest) > limit  # the model alone rests longer than drummers do
    assert max(capped_longest) <= limit + 1e-6
    # the cap is in seconds of the file, at any tempo
    slow = capped.generate(dataclasses.replace(options, bpm=60.0, variations=4))
    assert max(score.longest_silence for score in slow.scores) <= limit + 1e-6
    assert all(score.defect is None for score in slow.scores)


def test_a_groove_repeated_through_whole_excerpts_is_never_stuck(drums):
    _, scorer = drums
    assert scorer.references.repetition_p99_seconds >= 29  # drums repeat through 30 s
    assert scorer.references.repetition_limit is None
    bar = [(36, 0.0), (42, 0.5), (38, 1.0), (42, 1.5)]
    groove = _sequence([(pitch, 2.0 * b + t, 2.0 * b + t + 0.1) for b in range(60)
                        for pitch, t in bar], total=120.0, drums=True)
    score = scorer.score(groove)
    assert score.longest_repetition > 100 and score.defect is None


def test_repair_resamples_from_before_a_silence(drums):
    from perfrnn.sampler import Sampler

    bundle, scorer = drums
    sampler = Sampler(bundle, block_events=512, scorer=scorer)
    # no silence cap: the silences beyond the norm are left for repair to find
    sampler.planner.silence_cap = lambda bpm: 0
    options = GenerationOptions(seconds=30.0, seed=0, variations=8)
    kept = sampler.generate(dataclasses.replace(options, repair=False))
    repaired = sampler.generate(options)
    before = sum(score.defect is not None for score in kept.scores)
    after = sum(score.defect is not None for score in repaired.scores)
    assert kept.repairs == 0 and repaired.repairs > 0
    assert before >= 2 and after < before  # the song drums leave fewer silences than the old kit
    # a repaired piece keeps its music up to the bar before the defect
    assert all(len(s.notes) > 10 for s in repaired.sequences)


def test_cli_scores_a_file_against_a_style(tmp_path, real_excerpt):
    from note_seq import midi_io

    path = tmp_path / "joplin.mid"
    midi_io.note_sequence_to_midi_file(real_excerpt, str(path))
    result = subprocess.run(
        [sys.executable, "-m", "perfrnn", "score", str(path), "--bundle",
         str(BUNDLES / "piano.mag"), "--json"], capture_output=True, text=True, cwd=ROOT,
        timeout=300)
    assert result.returncode == 0, result.stderr
    score = json.loads(result.stdout)[str(path)]
    assert 0.5 < score["style"] <= 1 and score["defect"] is None
    result = subprocess.run(
        [sys.executable, "-m", "perfrnn", "score", str(tmp_path / "none.mid"), "--bundle",
         str(BUNDLES / "piano.mag")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
