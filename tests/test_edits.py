"""Edits of a generated piece: regenerate chosen bars (and parts), extend it.

On the shipped rock and piano bundles: whatever lies outside an edit stays
as it was, note for note; parts not picked stay as they were inside it too;
the same seed and edit give the same notes; bad edits say why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perfrnn.edits import Edit, EventParts, edit_piece, split_at_step
from perfrnn.errors import PerfRNNError
from perfrnn.generate import HUMAN_TIMING_LIMIT_SECONDS, apply_feel, tracks_for_program
from perfrnn.options import GenerationOptions
from perfrnn.registry import load_bundle
from perfrnn.request_plan import SampleRequest
from perfrnn.sampler import Sampler

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
OPTIONS = GenerationOptions(seconds=12.0, seed=5)


def notes(sequence, keep=lambda note: True) -> list[tuple]:
    return sorted((round(note.start_time, 6), round(note.end_time, 6), note.pitch,
                   note.velocity, note.instrument, note.is_drum)
                  for note in sequence.notes if keep(note))


@pytest.fixture(scope="module")
def rock():
    sampler = Sampler(load_bundle(BUNDLES / "rock.mag"))
    generation = sampler.generate(OPTIONS)
    tracks = tracks_for_program(sampler.bundle.metadata.tracks, None, None,
                                sampler.bundle.metadata.parts)
    return sampler, generation.events[0], generation.sequences[0], tracks


def test_regenerated_bars_change_and_every_note_outside_them_stays(rock):
    sampler, events, sequence, tracks = rock
    edited = edit_piece(sampler, OPTIONS, events, sequence, tracks,
                        Edit("regenerate", first_bar=3, last_bar=4, seed=9))
    begin, end = edited.window
    seconds_per_bar = 4 * 60.0 / sampler.bundle.metadata.default_bpm
    assert edited.window == pytest.approx((2 * seconds_per_bar, 4 * seconds_per_bar))

    def outside(note):
        return not begin - 1e-9 <= note.start_time < end - 1e-9

    assert notes(edited.sequence, outside) == notes(sequence, outside)
    inside = [notes(piece, lambda note: not outside(note)) for piece in (sequence, edited.sequence)]
    assert inside[1] and inside[0] != inside[1]
    assert edited.join is not None and edited.original_join is not None
    assert edited.sequence.total_time == pytest.approx(sequence.total_time)
    # the events were stitched the same way: they decode to the edited notes' onsets
    plan = sampler.planner.plan(SampleRequest(OPTIONS))
    decoded = sampler.planner.decode(edited.events, 0, plan.length, plan.bpm)
    assert sorted((round(n.start_time, 4), n.pitch, n.instrument) for n in decoded.notes) == \
        sorted((round(n.start_time, 4), n.pitch, n.instrument) for n in edited.sequence.notes)


def test_regenerating_one_part_keeps_the_others_inside_the_bars_too(rock):
    sampler, events, sequence, tracks = rock
    bass = next(index for index, track in enumerate(tracks) if track.name == "bass")
    edited = edit_piece(sampler, OPTIONS, events, sequence, tracks,
                        Edit("regenerate", first_bar=2, last_bar=3, parts=("bass",), seed=4))
    begin, end = edited.window

    def untouched(note):
        return note.instrument != bass or not begin - 1e-9 <= note.start_time < end - 1e-9

    assert notes(edited.sequence, untouched) == notes(sequence, untouched)
    assert notes(edited.sequence, lambda note: not untouched(note)) != \
        notes(sequence, lambda note: not untouched(note))


def test_the_same_seed_and_edit_give_the_same_notes(rock):
    sampler, events, sequence, tracks = rock
    edit = Edit("regenerate", first_bar=2, last_bar=2, seed=21)
    first = edit_piece(sampler, OPTIONS, events, sequence, tracks, edit)
    again = edit_piece(sampler, OPTIONS, events, sequence, tracks, edit)
    other = edit_piece(sampler, OPTIONS, events, sequence, tracks,
                       Edit("regenerate", first_bar=2, last_bar=2, seed=22))
    assert first.sequence.SerializeToString() == again.sequence.SerializeToString()
    assert np.array_equal(first.events, again.events)
    assert notes(first.sequence) != notes(other.sequence)


def test_extending_keeps_the_piece_and_adds_its_bars(rock):
    sampler, events, sequence, tracks = rock
    edited = edit_piece(sampler, OPTIONS, events, sequence, tracks,
                        Edit("extend", bars=2, seed=3))
    begin, end = edited.window
    step = 1.0 / sampler.steps_per_file_second(sampler.bundle.metadata.default_bpm)
    assert sequence.total_time - step < begin <= sequence.total_time + 1e-9
    assert edited.sequence.total_time == pytest.approx(end)
    # the bars made so far keep their chords and sections
    for field in ("text_annotations", "section_annotations"):
        assert [(mark.time, str(mark)) for mark in getattr(edited.sequence, field)
                if mark.time < begin - 1e-9] == \
            [(mark.time, str(mark)) for mark in getattr(sequence, field)]
    seconds_per_bar = 4 * 60.0 / sampler.bundle.metadata.default_bpm
    assert edited.options.seconds == pytest.approx(OPTIONS.seconds + 2 * seconds_per_bar)
    assert notes(edited.sequence, lambda note: note.start_time < begin - 1e-9) == \
        notes(sequence)
    assert any(note.start_time >= begin for note in edited.sequence.notes)


@pytest.mark.parametrize("edit, message", [
    (Edit("regenerate", first_bar=4, last_bar=3), "the selection is empty"),
    (Edit("regenerate", first_bar=2, last_bar=99), "outside the piece: it has bars 1-"),
    (Edit("regenerate", first_bar=0, last_bar=1), "outside the piece"),
    (Edit("regenerate", first_bar=1, last_bar=1, parts=("kazoo",)), "no part 'kazoo'"),
    (Edit("extend", bars=0), "extend by 1 to 64 bars"),
    (Edit("extend", bars=64), "cannot grow by 64 bars"),
    (Edit("extend", bars=2, parts=("bass",)), "an extend adds every part"),
    (Edit("regenerate", first_bar=1, last_bar=9, parts=("bass",)), "at most 8 bars"),
    (Edit("shuffle"), "kind must be one of regenerate, extend"),
])
def test_a_bad_edit_says_why(rock, edit, message):
    sampler, events, sequence, tracks = rock
    long = GenerationOptions(seconds=590.0, seed=5) if edit.bars == 64 or edit.last_bar == 9 \
        else OPTIONS
    with pytest.raises(PerfRNNError, match=message):
        edit_piece(sampler, long, events if long is OPTIONS else events[:1], sequence, tracks,
                   edit)


def test_events_that_do_not_match_the_settings_are_refused(rock):
    sampler, events, sequence, tracks = rock
    with pytest.raises(PerfRNNError, match="do not match its settings"):
        edit_piece(sampler, OPTIONS, events[::-1].copy(), sequence, tracks,
                   Edit("regenerate", first_bar=1, last_bar=1))


def test_a_cut_splits_the_time_shift_across_it(rock):
    sampler = rock[0]
    parts = EventParts(sampler.planner)
    shift = sampler.encoding.time_shift_events
    note = int(np.flatnonzero(parts.is_onset)[0])
    events = np.array([note, *shift(10), note, *shift(5)], np.int32)
    before, after = split_at_step(events, parts.shifts, 4, shift)
    assert parts.shifts[before].sum() == 4 and parts.shifts[after].sum() == 11
    assert before[0] == note and list(after[-len(shift(5)) - 1:]) == [note, *shift(5)]
    whole, rest = split_at_step(events, parts.shifts, 20, shift)
    assert parts.shifts[whole].sum() == 20 and len(rest) == 0
    at, later = split_at_step(events, parts.shifts, 10, shift)
    assert later[0] == note and parts.shifts[at].sum() == 10


def test_piano_regenerates_bars_in_its_own_time():
    sampler = Sampler(load_bundle(BUNDLES / "piano.mag"))
    options = GenerationOptions(seconds=10.0, seed=2, bpm=100.0)
    generation = sampler.generate(options)
    tracks = tracks_for_program(sampler.bundle.metadata.tracks, None, None,
                                sampler.bundle.metadata.parts)
    sequence = generation.sequences[0]
    edited = edit_piece(sampler, options, generation.events[0], sequence, tracks,
                        Edit("regenerate", first_bar=2, last_bar=2, seed=1))
    assert edited.window == pytest.approx((2.4, 4.8))

    def outside(note):
        return not 2.4 - 1e-9 <= note.start_time < 4.8 - 1e-9

    assert notes(edited.sequence, outside) == notes(sequence, outside)


def test_a_human_feel_moves_no_note_across_the_selection(rock):
    sampler, events, sequence, tracks = rock
    felt = apply_feel(sequence, "human", sampler.bundle.metadata.default_bpm, 7)
    edited = edit_piece(sampler, OPTIONS, events, felt, tracks,
                        Edit("regenerate", first_bar=2, last_bar=3, seed=6), feel="human")
    begin, end = (edge - HUMAN_TIMING_LIMIT_SECONDS for edge in edited.window)

    def outside(note):
        return not begin - 1e-9 <= note.start_time < end - 1e-9

    assert notes(edited.sequence, outside) == notes(felt, outside)
    assert len(edited.sequence.notes) == len(notes(felt, outside)) + len(
        notes(edited.sequence, lambda note: not outside(note)))
