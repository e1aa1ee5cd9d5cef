"""Tests for perfrnn.audio: real renders with tinysoundfont and pretty_midi's GM soundfont."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from perfrnn import audio
from perfrnn.audio import AudioUnavailable, audio_available, render_wav, render_wav_file
from perfrnn.configs import TrackRole
from perfrnn.errors import PerfRNNError
from perfrnn.midi_writer import midi_bytes

PIANO = TrackRole("piano", 0)
DRUMS = TrackRole("drums", 0, is_drum=True)
RATE = 22050  # half the default rate keeps the tests fast; the timing checks are in seconds
HEARD = 100.0  # RMS, in 16-bit units, that is clearly audible (silence renders as exact zeros)

def sequence(notes, total_time: float) -> music_pb2.NoteSequence:
    """notes: (pitch, start s, end s[, instrument[, velocity]]) tuples."""
    result = music_pb2.NoteSequence(total_time=total_time)
    for pitch, start, end, *rest in notes:
        instrument = rest[0] if rest else 0
        velocity = rest[1] if len(rest) > 1 else 100
        result.notes.add(pitch=pitch, start_time=start, end_time=end, instrument=instrument,
                         velocity=velocity)
    return result


def mido_bytes(*tracks, ticks_per_beat: int = 480) -> bytes:
    """A type 1 file from tracks given as lists of (absolute tick, message)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for timed in tracks:
        track, now = mido.MidiTrack(), 0
        for tick, message in sorted(timed, key=lambda pair: pair[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def decode(data: bytes, channels: int = 2, rate: int = RATE) -> np.ndarray:
    """The WAV's frames as a (frames, 2) float array in 16-bit units, checking its format."""
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (channels, 2, rate)
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, "<i2").reshape(-1, channels).astype(np.float64)


def rms(samples: np.ndarray, start: float, end: float, rate: int = RATE) -> float:
    part = samples[round(start * rate):round(end * rate)]
    assert len(part), "empty region"
    return float(np.sqrt(np.mean(part**2)))


def onset(samples: np.ndarray, rate: int = RATE, threshold: float = 200.0) -> float:
    """Seconds to the first sample louder than threshold."""
    loud = np.flatnonzero(np.abs(samples).max(axis=1) > threshold)
    assert len(loud), "no sound at all"
    return loud[0] / rate


def render(data: bytes, **kwargs) -> np.ndarray:
    return decode(render_wav(data, sample_rate=RATE, **kwargs))


def test_audio_is_available_with_pretty_midis_soundfont(monkeypatch):
    monkeypatch.delenv(audio.SOUNDFONT_ENV, raising=False)
    assert audio_available() == (True, "")
    path = audio.soundfont_path()
    assert path is not None and path.name == "TimGM6mb.sf2" and path.is_file()


def test_format_and_length_follow_the_midi_file():
    data = midi_bytes(sequence([(60, 0.5, 1.5)], total_time=3.0), [PIANO])
    assert mido.MidiFile(file=io.BytesIO(data)).length == pytest.approx(3.0)
    assert len(render(data)) / RATE == pytest.approx(3.0 + 1.0, abs=0.05)
    assert len(render(data, tail_seconds=0.25)) / RATE == pytest.approx(3.25, abs=0.05)
    default = decode(render_wav(data), rate=44100)  # the default rate, tail 1 s
    assert len(default) / 44100 == pytest.approx(4.0, abs=0.05)


def test_sound_where_the_notes_play_and_silence_elsewhere():
    samples = render(midi_bytes(sequence([(60, 1.0, 2.0), (64, 1.0, 2.0)], 4.0), [PIANO]))
    before, during, after = rms(samples, 0, 0.95), rms(samples, 1.05, 1.9), rms(samples, 3.5, 5)
    assert during > HEARD
    assert during > 100 * max(before, after, 1.0)
    assert onset(samples) == pytest.approx(1.0, abs=0.02)
    assert rms(samples[:, :1], 1.05, 1.9) > HEARD and rms(samples[:, 1:], 1.05, 1.9) > HEARD


def test_midi_without_notes_renders_silence():
    samples = render(midi_bytes(sequence([], total_time=2.0), [PIANO]))
    assert len(samples) / RATE == pytest.approx(3.0, abs=0.05)
    assert np.abs(samples).max() <= 1


def test_drums_on_channel_10_play_the_drum_kit():
    notes = [(36, t, t + 0.1) for t in (0.25, 0.75)] + [(38, t, t + 0.1) for t in (0.5, 1.0)]
    drums_midi = midi_bytes(sequence(notes, 1.5), [DRUMS])
    channels = {m.channel for track in mido.MidiFile(file=io.BytesIO(drums_midi)).tracks
                for m in track if m.type == "note_on"}
    assert channels == {9}
    drums = render(drums_midi)
    piano = render(midi_bytes(sequence(notes, 1.5), [PIANO]))
    assert rms(drums, 0.25, 1.2) > HEARD
    assert onset(drums) == pytest.approx(0.25, abs=0.02)
    # A piano playing pitches 36 and 38 sounds nothing like a kick and a snare.
    assert np.abs(drums - piano).mean() > 0.5 * np.abs(drums).mean()


def test_channel_10_is_a_drum_kit_even_without_a_program_change():
    def snare(channel: int, program: int | None = None) -> bytes:
        events = [(0, mido.Message("note_on", channel=channel, note=38, velocity=100)),
                  (240, mido.Message("note_off", channel=channel, note=38))]
        if program is not None:  # first: events on one tick keep their order
            events.insert(0, (0, mido.Message("program_change", channel=channel, program=program)))
        return mido_bytes(events)

    default_kit, standard_kit = render(snare(9)), render(snare(9, program=0))
    np.testing.assert_array_equal(default_kit, standard_kit)
    piano = render(snare(0))
    assert np.abs(default_kit - piano).mean() > 0.5 * np.abs(default_kit).mean()
    tr808 = render(snare(9, program=25))  # GM2 kits are presets of bank 128
    assert np.abs(tr808 - standard_kit).mean() > 0.3 * np.abs(standard_kit).mean()


def test_programs_change_the_sound():
    notes = sequence([(60, 0.2, 1.2), (67, 0.2, 1.2)], 1.5)
    renders = {program: render(midi_bytes(notes, [TrackRole("part", program)]))
               for program in (0, 40, 81)}  # piano, violin, saw lead
    for program, samples in renders.items():
        assert rms(samples, 0.3, 1.1) > HEARD, program
    for a, b in ((0, 40), (0, 81), (40, 81)):
        difference = np.abs(renders[a] - renders[b]).mean()
        assert difference > 0.3 * np.abs(renders[a]).mean(), (a, b)


def test_program_changes_during_the_file_apply_per_channel():
    note_on = mido.Message("note_on", channel=0, note=60, velocity=100)
    note_off = mido.Message("note_off", channel=0, note=60)
    first, second = [(0, note_on), (480, note_off)], [(960, note_on), (1440, note_off)]
    steady = mido_bytes([(0, mido.Message("program_change", channel=0, program=0))]
                        + first + second)
    changed = mido_bytes([(0, mido.Message("program_change", channel=0, program=0)),
                          (720, mido.Message("program_change", channel=0, program=40))]
                         + first + second)
    a, b = render(steady), render(changed)
    np.testing.assert_array_equal(a[: RATE // 2], b[: RATE // 2])  # same first note
    assert np.abs(a[RATE:] - b[RATE:]).mean() > 0.3 * np.abs(a[RATE:]).mean()


@pytest.mark.parametrize("tempos, expected", [
    ([(0, 60)], 4.0),             # beat 4 at 60 BPM
    ([(0, 120)], 2.0),            # beat 4 at 120 BPM
    ([(0, 120), (960, 60)], 3.0),  # two beats at 120 BPM, then two at 60 BPM
])
def test_tempo_changes_are_honoured(tempos, expected):
    conductor = [(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
                 for tick, bpm in tempos]
    notes = [(4 * 480, mido.Message("note_on", channel=0, note=72, velocity=110)),
             (5 * 480, mido.Message("note_off", channel=0, note=72))]
    data = mido_bytes(conductor, notes)
    samples = render(data)
    assert onset(samples) == pytest.approx(expected, abs=0.02)
    length = mido.MidiFile(file=io.BytesIO(data)).length
    assert len(samples) / RATE == pytest.approx(length + 1.0, abs=0.05)


def test_sustain_pedal_holds_notes_until_released():
    def pedal_file(pedal: bool) -> bytes:  # 120 BPM: 480 ticks = 0.5 s
        events = [(0, mido.Message("note_on", note=60, velocity=100)),
                  (240, mido.Message("note_off", note=60)),
                  (1440, mido.MetaMessage("end_of_track"))]
        if pedal:
            events += [(0, mido.Message("control_change", control=64, value=127)),
                       (960, mido.Message("control_change", control=64, value=0))]
        return mido_bytes(events)

    held, plain = render(pedal_file(True)), render(pedal_file(False))
    assert rms(held, 0.7, 0.95) > 10 * max(rms(plain, 0.7, 0.95), 1.0)
    assert rms(held, 0.7, 0.95) > HEARD / 2
    assert rms(held, 1.3, 1.4) < rms(held, 0.7, 0.95) / 10  # released at 1.0 s


def test_channel_volume_controller_is_applied():
    def volume_file(volume: int) -> bytes:
        return mido_bytes([(0, mido.Message("control_change", control=7, value=volume)),
                           (0, mido.Message("note_on", note=60, velocity=100)),
                           (480, mido.Message("note_off", note=60))])

    loud, quiet = render(volume_file(127)), render(volume_file(40))
    assert rms(loud, 0.05, 0.45) > 5 * rms(quiet, 0.05, 0.45) > 0


def test_a_loud_dense_chord_does_not_clip():
    roles = [TrackRole(f"part{program}", program) for program in (0, 30, 48, 61, 81)] + [DRUMS]
    notes = [(pitch, 0.1, 1.5, index, 127) for index in range(5) for pitch in range(36, 96, 2)]
    notes += [(pitch, 0.1, 0.5, 5, 127) for pitch in range(35, 60)]
    samples = render(midi_bytes(sequence(notes, 2.0), roles))
    peak = np.abs(samples).max()
    assert peak < 32767
    assert peak == pytest.approx(audio.PEAK_LIMIT * 32767, abs=2)  # turned down, not clipped


def test_quiet_music_is_not_boosted():
    soft = render(midi_bytes(sequence([(60, 0.1, 0.6, 0, 20)], 1.0), [PIANO]))
    loud = render(midi_bytes(sequence([(60, 0.1, 0.6, 0, 120)], 1.0), [PIANO]))
    assert 0 < np.abs(soft).max() < np.abs(loud).max() < audio.PEAK_LIMIT * 32767


@pytest.mark.parametrize("data", [
    b"",
    b"this is not a MIDI file at all",
    b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x90",  # truncated
])
def test_corrupt_midi_raises_a_clear_error(data):
    with pytest.raises(PerfRNNError, match="MIDI file"):
        render_wav(data)


def test_truncated_real_file_raises_a_clear_error():
    data = midi_bytes(sequence([(60, 0.0, 1.0), (62, 1.0, 2.0)], 2.0), [PIANO])
    with pytest.raises(PerfRNNError, match="corrupt"):
        render_wav(data[: len(data) - 12])


def test_bad_arguments_raise_clear_errors():
    data = midi_bytes(sequence([(60, 0.0, 1.0)], 1.0), [PIANO])
    with pytest.raises(PerfRNNError, match="sample_rate"):
        render_wav(data, sample_rate=100)
    with pytest.raises(PerfRNNError, match="tail_seconds"):
        render_wav(data, tail_seconds=-1)
    with pytest.raises(PerfRNNError, match="at most"):
        render_wav(data, max_seconds=1.5)


def test_render_wav_file_writes_the_wav(tmp_path):
    midi_path = tmp_path / "in.mid"
    midi_path.write_bytes(midi_bytes(sequence([(60, 0.0, 0.5)], 1.0), [PIANO]))
    written = render_wav_file(midi_path, tmp_path / "out" / "song.wav", sample_rate=RATE,
                              tail_seconds=0.5)
    assert written == tmp_path / "out" / "song.wav"
    assert len(decode(written.read_bytes())) / RATE == pytest.approx(1.5, abs=0.05)
    with pytest.raises(PerfRNNError, match="cannot read"):
        render_wav_file(tmp_path / "missing.mid", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_missing_soundfont_raises_audio_unavailable(monkeypatch, tmp_path):
    data = midi_bytes(sequence([(60, 0.0, 0.5)], 1.0), [PIANO])
    assert audio_available() == (True, "")  # the cached "available" must not survive below
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(tmp_path / "missing.sf2"))
    monkeypatch.setattr(audio, "pretty_midi_soundfont", lambda: None)
    assert audio.soundfont_path() is None
    available, reason = audio_available()
    assert not available
    assert audio.SOUNDFONT_ENV in reason and "pip install" in reason and "missing.sf2" in reason
    with pytest.raises(AudioUnavailable, match=audio.SOUNDFONT_ENV) as error:
        render_wav(data)
    assert isinstance(error.value, PerfRNNError)
    monkeypatch.undo()  # and nothing cached leaks back out
    assert audio_available() == (True, "")
    assert len(render(data, tail_seconds=0)) == RATE


def test_soundfont_from_the_environment(monkeypatch, tmp_path):
    bundled = audio.pretty_midi_soundfont()
    copy = tmp_path / "my.sf2"
    copy.symlink_to(bundled)
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(copy))
    assert audio.soundfont_path() == copy
    assert audio_available() == (True, "")
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00not a soundfont")
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(broken))
    assert audio.soundfont_path() == broken
    available, reason = audio_available()
    assert not available and "cannot be loaded" in reason and str(broken) in reason
    with pytest.raises(AudioUnavailable, match="cannot be loaded"):
        render_wav(midi_bytes(sequence([(60, 0.0, 0.5)], 1.0), [PIANO]))


def test_importing_the_module_does_not_import_the_synthesizer():
    import subprocess
    import sys

    code = ("import sys, perfrnn.audio; "
            "assert 'tinysoundfont' not in sys.modules, 'imported eagerly'")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
