"""The shipped styles: within the size budget, complete cards, clean 30-second MIDI."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pretty_midi
import pytest
from test_metric import note_events

from perfrnn.bundle import read_bundle
from perfrnn.generate import MidiOptions, generate_midi
from perfrnn.note_lengths import QUANTILES
from perfrnn.options import GenerationOptions
from perfrnn.sampler import Sampler

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
STYLES = ("piano", "drums", "rock", "electronic", "jazz", "latin", "blues", "funk")
BAND_STYLES = ("rock", "electronic", "jazz", "latin", "blues", "funk")
BASE_STYLES = ("drums", "rock", "electronic", "jazz", "latin", "funk", "blues", "country")
BUDGET_BYTES = 120_000_000


def test_the_styles_fit_the_size_budget():
    sizes = {path.stem: path.stat().st_size for path in BUNDLES.glob("*.mag")}
    assert set(STYLES) <= set(sizes)
    assert sum(sizes.values()) <= BUDGET_BYTES


@pytest.fixture(scope="module", params=STYLES)
def style(request):
    return request.param, read_bundle(BUNDLES / f"{request.param}.mag")


def test_card_and_metadata(style):
    name, bundle = style
    meta = bundle.metadata
    assert meta.style == name
    assert meta.provenance and all(item["licence"] for item in meta.provenance)
    assert meta.metrics["validation_nll_per_event"] > 0
    if name == "piano":  # the song styles' figures are in bundles/README.md ("Songs")
        assert 0 <= meta.metrics["mean_overlapping_area"] <= 1
    assert "## Data" in meta.card and "## Evaluation" in meta.card
    assert meta.types and all(0 <= t["program"] <= 127 for t in meta.types)
    assert len(meta.max_note_seconds) == len(meta.tracks)
    drums = [track for track in meta.tracks if track.is_drum]
    assert (name != "piano") == bool(drums)
    # Every drum and band style is the band base with its style fixed; the
    # drums play only the kit. They follow a song plan: chords and sections.
    assert bundle.config.is_multitrack == (name != "piano")
    if name != "piano":
        assert bundle.config.style_names == BASE_STYLES
        assert bundle.config.song_inputs and bundle.encoding.reads_song
        assert meta.style_mix == {name: 1.0}
        played = [track.name for track in meta.played_tracks]
        assert played == (["drums"] if name == "drums" else [t.name for t in meta.tracks])
        assert len(meta.note_length_steps) == len(meta.tracks)
        assert all(len(row) == QUANTILES for row, track in zip(meta.note_length_steps, meta.tracks)
                   if track in meta.played_tracks)
        assert meta.progressions and all(len(chords) >= 4 for chords in meta.progressions)
    # Drum and band styles play on the beat; piano keeps Magenta's encoding.
    assert bundle.config.is_metric == (name != "piano")
    assert bundle.is_magenta_compatible == (name == "piano")


def test_thirty_seconds_of_clean_midi(style):
    name, bundle = style
    files = generate_midi(Sampler(bundle), GenerationOptions(seconds=30, seed=1, variations=2),
                          MidiOptions()).files
    drum_tracks = {track.name for track in bundle.metadata.tracks if track.is_drum}
    for file_name, data in files:
        assert file_name.startswith(f"{name}-30s-seed1")
        midi = mido.MidiFile(file=io.BytesIO(data))
        assert abs(midi.length - 30.0) <= 1.0
        notes = 0
        for track in midi.tracks[1:]:
            sounding: dict[tuple[int, int], int] = {}
            for message in track:
                if message.type not in ("note_on", "note_off"):
                    continue
                assert (message.channel == 9) == (track.name in drum_tracks), track.name
                key = (message.channel, message.note)
                if message.type == "note_on" and message.velocity > 0:
                    sounding[key] = sounding.get(key, 0) + 1
                    notes += 1
                else:
                    assert sounding.get(key, 0) > 0, "orphan note-off"
                    sounding[key] -= 1
            assert not any(sounding.values()), "hanging note"
        assert notes > 20
        assert pretty_midi.PrettyMIDI(io.BytesIO(data)).instruments


ON_THE_GRID_TICKS = {0, 120, 160, 240, 320, 360}  # sixteenths and eighth triplets of 480


@pytest.mark.parametrize("name", ["drums", *BAND_STYLES])
def test_drum_and_band_styles_start_every_note_on_the_grid_at_any_tempo(name):
    bundle = read_bundle(BUNDLES / f"{name}.mag")
    sampler = Sampler(bundle)
    for bpm in (71, 97, 163):
        files = generate_midi(sampler, GenerationOptions(seconds=20, seed=3, bpm=bpm)).files
        _, events = note_events(files[0][1])
        onsets = [tick for tick, kind, _ in events if kind == "on"]
        assert len(onsets) >= 8
        assert {tick % 480 for tick in onsets} <= ON_THE_GRID_TICKS, (name, bpm)
