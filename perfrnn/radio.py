"""Endless radio: music in a style without end, as one continuous MP3 stream.

A `Radio` continues one sampling row for ever (`perfrnn.sampler.SampleStream`):
the LSTM state, the sounding notes and the random stream carry over from chunk
to chunk, so nothing restarts from silence. Its events are decoded as they
come (`StreamDecoder`) and played on one synthesizer for the whole stream
(`perfrnn.audio.StreamSynth`), so notes ring across the joins; LAME
(`lameenc`) encodes the audio into one MP3 stream, frame after frame.

A metric style's chunk is one bar, so a new tempo starts on a bar line;
piano's is CHUNK_SECONDS of its own time. The notes heard are kept for the
last MAX_HISTORY_SECONDS, in beats, to download as a MIDI file that sits on
its bars (`Radio.midi`).

MP3 because every browser's `<audio>`, VLC and phone players play it from a
plain HTTP URL, and `lameenc` is one self-contained wheel (LAME built in):
no system package and no FFmpeg.
"""

from __future__ import annotations

import collections
import io
import math
import threading
from dataclasses import dataclass

import mido
import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.audio import DEFAULT_SAMPLE_RATE, StreamSynth
from perfrnn.errors import PerfRNNError
from perfrnn.generate import tracks_for_program
from perfrnn.midi_writer import assign_channels, midi_bytes
from perfrnn.options import MAX_BPM, MIN_BPM, GenerationOptions
from perfrnn.sampler import Sampler

MP3_BITRATE = 128  # kbit/s
MP3_QUALITY = 7  # LAME's 2 (best) to 7 (fastest)
CHUNK_SECONDS = 2.0  # a time-based style's chunk, in its own seconds
MAX_HISTORY_SECONDS = 30 * 60.0  # the notes kept for the MIDI download
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 2.0


@dataclass(frozen=True)
class HeardNote:
    """A note of the stream: its track, pitch and velocity, and when it
    sounded, in seconds of the stream and in beats (quarter notes)."""

    track: int
    pitch: int
    velocity: int
    start: float
    end: float
    start_beat: float
    end_beat: float


class StreamDecoder:
    """Event indices to note-ons and note-offs at their times, as they come.

    Time shifts advance the clock at the rate the caller gives per batch of
    events (steps per second of audio, steps per beat); a note struck again
    while it sounds is ended first, and a note-off of a silent note is dropped.
    """

    def __init__(self, encoding):
        self._shift = encoding.time_shift_steps()
        self._on, self._off, _ = encoding.note_keys()
        self._velocity = encoding.velocities()
        self.velocity = 64
        self.seconds = 0.0  # the clock, in seconds of audio
        self.beats = 0.0  # and in quarter notes
        self.sounding: dict[int, tuple[float, float, int]] = {}  # key -> start s, beat, vel

    def feed(self, events: np.ndarray, steps_per_second: float, steps_per_beat: float
             ) -> tuple[list[tuple[float, int, int]], list[HeardNote]]:
        """Decodes events; returns the (seconds, key, velocity; 0 for off)
        messages and the notes that ended. A key is track * 128 + pitch."""
        messages: list[tuple[float, int, int]] = []
        ended: list[HeardNote] = []

        def end(key: int) -> None:
            start, start_beat, velocity = self.sounding.pop(key)
            messages.append((self.seconds, key, 0))
            ended.append(HeardNote(key // 128, key % 128, velocity, start, self.seconds,
                                   start_beat, self.beats))

        for event in np.asarray(events, np.int64):
            steps = self._shift[event]
            if steps:
                self.seconds += steps / steps_per_second
                self.beats += steps / steps_per_beat
            elif self._velocity[event]:
                self.velocity = int(self._velocity[event])
            elif self._off[event] >= 0:
                if int(self._off[event]) in self.sounding:
                    end(int(self._off[event]))
            elif self._on[event] >= 0:
                key = int(self._on[event])
                if key in self.sounding:
                    end(key)
                self.sounding[key] = (self.seconds, self.beats, self.velocity)
                messages.append((self.seconds, key, self.velocity))
        return messages, ended


def check_radio_settings(bpm: float | None = None, temperature: float | None = None) -> None:
    """Raises PerfRNNError naming the range of a tempo or temperature out of it."""
    if bpm is not None and not (isinstance(bpm, (int, float)) and MIN_BPM <= bpm <= MAX_BPM):
        raise PerfRNNError(f"tempo must be from {MIN_BPM:g} to {MAX_BPM:g} BPM, got {bpm}")
    if temperature is not None and not (isinstance(temperature, (int, float))
                                        and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        raise PerfRNNError(f"creativity (temperature) must be from {MIN_TEMPERATURE:g} to "
                           f"{MAX_TEMPERATURE:g}, got {temperature}")


class Radio:
    """One listener's endless stream in a style (see the module doc).

    Args:
      sampler: The style's sampler (shared; a Radio keeps its own row).
      options: Seed, temperature, tempo, controls and blend; the length is ignored.
      program: GM program for a part (the "type"); None for the style's own.
      track: The part `program` is for (default: the style's main part).
      sample_rate: Samples per second of the audio.

    Raises:
      PerfRNNError: a setting is invalid.
      AudioUnavailable: the synthesizer or its soundfont is missing.
    """

    def __init__(self, sampler: Sampler, options: GenerationOptions,
                 program: int | None = None, track: str | None = None,
                 sample_rate: int = DEFAULT_SAMPLE_RATE):
        import lameenc

        options.validate()
        check_radio_settings(options.bpm, options.temperature)
        bundle = sampler.bundle
        metadata = bundle.metadata
        self.style = metadata.style
        self.stream = sampler.open_stream(options)
        self.seed = self.stream.plan.seed
        self.tracks = tracks_for_program(metadata.tracks, program, track, metadata.parts)
        self.channels = assign_channels(self.tracks, list(range(len(self.tracks))))
        # GM program per pitched channel (channel 9 plays the kits)
        self.programs = {channel: self.tracks[index].program
                         for index, channel in self.channels.items()
                         if not self.tracks[index].is_drum}
        self.synth = StreamSynth(self.programs, sample_rate)
        self.encoder = lameenc.Encoder()
        self.encoder.set_bit_rate(MP3_BITRATE)
        self.encoder.set_in_sample_rate(sample_rate)
        self.encoder.set_channels(2)
        self.encoder.set_quality(MP3_QUALITY)
        self.decoder = StreamDecoder(bundle.encoding)
        encoding = bundle.encoding
        self.metre = sampler.metre
        # model steps in a beat of the stream (at the style's own tempo for one
        # that is stretched to the stream's): a chunk is a bar of a style whose
        # steps are beats, else about CHUNK_SECONDS
        self._steps_per_beat = encoding.steps_per_file_second(60.0, metadata.default_bpm)
        self._chunk_steps = (round(self._steps_per_beat * self.metre.quarters_per_bar)
                             if encoding.follows_tempo
                             else round(CHUNK_SECONDS * encoding.steps_per_second(
                                 metadata.default_bpm)))
        self._pending: dict = {}
        # guards what next_chunk changes and others read: pending changes, the
        # notes heard, the tempo map and the decoder's clock and sounding notes
        self._lock = threading.Lock()
        self.heard: collections.deque[HeardNote] = collections.deque()
        # (second, beat, bpm) where each tempo began: the MIDI file's tempo map
        self.tempo_map: list[tuple[float, float, float]] = [(0.0, 0.0, self.stream.bpm)]

    @property
    def bpm(self) -> float:
        return self.stream.bpm

    @property
    def conditioned(self) -> bool:
        """Whether the style takes note density and key."""
        return bool(self.stream.planner.encoding.control_signals)

    @property
    def temperature(self) -> float:
        return float(self.stream.row.temperature)

    @property
    def seconds(self) -> float:
        """Seconds of audio made so far."""
        return self.decoder.seconds

    def change(self, bpm: float | None = None, temperature: float | None = None,
               notes_per_second: float | None = None, pitch_histogram=None) -> None:
        """New settings, heard from the next chunk on (a metric style's next bar).

        Raises:
          PerfRNNError: a setting is out of range, or the style takes no controls.
        """
        check_radio_settings(bpm, temperature)
        if (notes_per_second is not None or pitch_histogram is not None) \
                and not self.conditioned:
            raise PerfRNNError(f"style {self.style!r} is not conditioned: it takes no note "
                               "density or key")
        updates = {"bpm": bpm, "temperature": temperature,
                   "notes_per_second": notes_per_second, "pitch_histogram": pitch_histogram}
        with self._lock:
            self._pending.update({name: value for name, value in updates.items()
                                  if value is not None})

    def next_chunk(self) -> bytes:
        """Makes the next chunk of music and returns its MP3 bytes (LAME may
        hold some back until the next call)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            self.stream.change(**pending)
        events = self.stream.extend(self._chunk_steps)
        with self._lock:
            if pending.get("bpm") not in (None, self.tempo_map[-1][2]):
                self.tempo_map.append((self.decoder.seconds, self.decoder.beats,
                                       self.stream.bpm))
            messages, ended = self.decoder.feed(events, self.stream.steps_per_file_second(),
                                                self._steps_per_beat)
        channel_messages = []
        for seconds, key, velocity in messages:
            channel, pitch = self.channels[key // 128], key % 128
            kind = "note_on" if velocity else "note_off"
            channel_messages.append((seconds, mido.Message(kind, channel=channel, note=pitch,
                                                           velocity=velocity)))
        audio = self.synth.render(channel_messages, self.decoder.seconds)
        with self._lock:
            self._remember(ended)
        pcm = np.round(audio * 32767.0).astype("<i2")
        return bytes(self.encoder.encode(pcm.tobytes()))

    def close(self) -> bytes:
        """The MP3 bytes LAME still holds; the stream ends with them."""
        return bytes(self.encoder.flush())

    def _remember(self, ended: list[HeardNote]) -> None:
        self.heard.extend(ended)
        while self.heard and self.heard[0].end < self.seconds - MAX_HISTORY_SECONDS:
            self.heard.popleft()
        while len(self.tempo_map) > 1 and \
                self.tempo_map[1][0] < self.seconds - MAX_HISTORY_SECONDS:
            self.tempo_map.pop(0)

    def midi(self, minutes: float | None = None) -> bytes:
        """What was heard so far (the last `minutes`, at most
        MAX_HISTORY_SECONDS) as a MIDI file that starts on the bar line before
        its first note, with the stream's tempo changes in its tempo map, so
        it plays as it was heard and sits on its bars.

        Raises:
          PerfRNNError: nothing was heard yet in that span.
        """
        with self._lock:  # a copy; the file is built while the music goes on
            now, beats = self.decoder.seconds, self.decoder.beats
            heard, sounding = list(self.heard), dict(self.decoder.sounding)
            tempo_map = list(self.tempo_map)
        since = now - (MAX_HISTORY_SECONDS if minutes is None
                       else min(minutes * 60.0, MAX_HISTORY_SECONDS))
        notes = [note for note in heard if note.end > since]
        notes += [HeardNote(key // 128, key % 128, velocity, start, now, beat, beats)
                  for key, (start, beat, velocity) in sounding.items()]
        notes = [note for note in notes if note.start >= since]
        if not notes:
            raise PerfRNNError("nothing has played yet; listen a little first")
        bar_beats = self.metre.quarters_per_bar
        first = math.floor(min(note.start_beat for note in notes) / bar_beats) * bar_beats
        tempos = [(max(beat - first, 0.0), bpm) for _, beat, bpm in tempo_map if beat > first]
        earlier = [bpm for _, beat, bpm in tempo_map if beat <= first]
        tempos.insert(0, (0.0, earlier[-1] if earlier else tempo_map[0][2]))
        seconds_per_beat = 60.0 / tempos[0][1]  # the notes are placed by beats
        sequence = music_pb2.NoteSequence()
        for note in notes:
            sequence.notes.add(
                instrument=note.track, pitch=note.pitch, velocity=note.velocity,
                is_drum=self.tracks[note.track].is_drum,
                start_time=(note.start_beat - first) * seconds_per_beat,
                end_time=max(note.end_beat - first, note.start_beat - first + 1e-3)
                * seconds_per_beat)
        sequence.total_time = (beats - first) * seconds_per_beat
        data = midi_bytes(sequence, self.tracks, bpm=tempos[0][1], native_bpm=tempos[0][1],
                          title=f"{self.style} radio",
                          time_signature=(self.metre.numerator, self.metre.denominator))
        return with_tempo_map(data, tempos)


QUIET = 10 ** (-60 / 20)  # -60 dBFS: near-silence in the audio


def longest_quiet(samples: np.ndarray, rate: int, start: float = 0.0) -> float:
    """Seconds of the longest run of near-silence (under QUIET in every 10 ms
    window) in mono `samples` at `rate` Hz, from `start` seconds on: a gap in
    a stream's audio shows here."""
    window = rate // 100
    frames = samples[int(start * rate):]
    frames = frames[:len(frames) // window * window].reshape(-1, window)
    longest = run = 0
    for quiet in np.abs(frames).max(axis=1) < QUIET:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return longest / 100


def longest_rest(notes, after: float = 0.0) -> float:
    """Seconds of the longest time no note of `notes` (HeardNotes) sounds,
    from the first note after `after` on: the rest a stream's audio may have."""
    spans = sorted((note.start, note.end) for note in notes if note.end > after)
    longest, covered = 0.0, max(after, spans[0][0]) if spans else after
    for start, end in spans:
        longest = max(longest, start - covered)
        covered = max(covered, end)
    return longest


def with_tempo_map(data: bytes, tempos: list[tuple[float, float]]) -> bytes:
    """A MIDI file (ours: its first track the conductor) with its tempo
    replaced by `tempos`, (beat, bpm) in order from beat 0. Notes stay on
    their beats; only their times change."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    conductor = midi.tracks[0]
    timed, tick = [], 0
    for message in conductor:
        tick += message.time
        if message.type != "set_tempo":
            timed.append((tick, message))
    timed += [(round(beat * midi.ticks_per_beat),
               mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for beat, bpm in tempos]
    timed.sort(key=lambda item: (item[0], item[1].type == "end_of_track"))
    conductor.clear()
    previous = 0
    for tick, message in timed:
        conductor.append(message.copy(time=tick - previous))
        previous = tick
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()
