"""Server-side audio: our MIDI files rendered to WAV with a General MIDI soundfont.

The synthesizer is TinySoundFont through the `tinysoundfont` wheel from PyPI,
and the soundfont is TimGM6mb.sf2 (General MIDI, 6 MB), the one the
`pretty_midi` package already ships inside its package folder. Both come with
`pip install`, so the server needs no system package (no FluidSynth, no
timidity, no ffmpeg) and no download at run time. Set `PERFRNN_SOUNDFONT` to
the path of another .sf2 file to use a better-sounding soundfont.

`tinysoundfont` 0.3.7 declares a dependency on `pyaudio`, which it imports only
for live playback (`Synth.start`), never for rendering. PyAudio has no Linux
wheels and needs PortAudio's headers to build, so on a bare Linux machine
install the synthesizer with `pip install --no-deps tinysoundfont==0.3.7`.

The MIDI file is read with mido and played through the synthesizer event by
event: times come from mido's merged-track iteration, which turns ticks into
seconds through every tempo change; program changes (and bank selects) pick
presets per channel, channel 10 (9 counted from 0) plays the drum kits of bank
128, and the controllers TinySoundFont understands (volume, expression, pan,
pitch-bend range via RPN, all notes/sounds off, reset) are passed on.
TinySoundFont has no sustain pedal, so controller 64 is carried out here by
holding back note-offs while the pedal is down. Audio between two events is
rendered in one `Synth.generate` call. The result is 16-bit stereo PCM, as
long as the MIDI file plus `tail_seconds` (for the last notes' release), turned
down as a whole when its peak would pass PEAK_LIMIT (quieter music is left
as it is, so the level does not pump from piece to piece).

`tinysoundfont` is imported inside functions, so importing this module never
fails; `audio_available()` says whether rendering can work here, and why not.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import os
import wave
from pathlib import Path

import mido
import numpy as np

from perfrnn.errors import PerfRNNError

SOUNDFONT_ENV = "PERFRNN_SOUNDFONT"
PRETTY_MIDI_SOUNDFONT = "TimGM6mb.sf2"
DEFAULT_SAMPLE_RATE = 44100
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
# Longest audio render_wav makes by default: generation allows 10 minutes, and a
# float32 stereo buffer of 15 minutes at 44.1 kHz is already about 320 MB.
MAX_RENDER_SECONDS = 900.0
MP3_DOWNLOAD_BITRATE = 192  # kbit/s of a downloaded MP3
MP3_DOWNLOAD_QUALITY = 5  # LAME's 2 (best) to 7 (fastest)
PEAK_LIMIT = 10 ** (-1 / 20)  # -1 dBFS: the loudest sample a render may have
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
MAX_VOICES = 256
INSTALL_HINT = ("pip install --no-deps tinysoundfont==0.3.7 (--no-deps skips PyAudio, "
                "which is only needed for live playback)")

# Controllers TinySoundFont's channel_midi_control acts on: bank select MSB/LSB,
# data entry MSB/LSB, volume MSB/LSB, pan MSB/LSB, expression MSB/LSB, (N)RPN
# select, all sound off, reset all controllers, all notes off.
_SYNTH_CONTROLLERS = frozenset({0, 32, 6, 38, 7, 39, 10, 42, 11, 43, 98, 99, 100, 101,
                                120, 121, 123})
_SUSTAIN = 64
_RESET_ALL_CONTROLLERS = 121
_ALL_NOTES_OFF = (120, 123)
_BYTES_PER_FRAME = 2 * 4  # stereo float32, TinySoundFont's StereoInterleaved output


class AudioUnavailable(PerfRNNError):
    """No synthesizer or no soundfont here; the message says what to install or set."""


def pretty_midi_soundfont() -> Path | None:
    """The GM soundfont shipped inside the installed pretty_midi package, or None.

    The package is located without importing it.
    """
    try:
        spec = importlib.util.find_spec("pretty_midi")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / PRETTY_MIDI_SOUNDFONT
        if path.is_file():
            return path
    return None


def soundfont_path() -> Path | None:
    """The soundfont to render with: $PERFRNN_SOUNDFONT if that file exists,
    else pretty_midi's TimGM6mb.sf2, else None."""
    configured = os.environ.get(SOUNDFONT_ENV)
    if configured and Path(configured).expanduser().is_file():
        return Path(configured).expanduser()
    return pretty_midi_soundfont()


@functools.lru_cache(maxsize=1)
def _import_synth():
    """The tinysoundfont module, or the reason it cannot be imported."""
    try:
        import tinysoundfont
    except ImportError as error:
        return None, (f"audio rendering needs the tinysoundfont package ({error}); "
                      f"install it: {INSTALL_HINT}")
    return tinysoundfont, ""


@functools.lru_cache(maxsize=8)
def _soundfont_problem(path: str, mtime_ns: int, size: int) -> str:
    """Why the soundfont at `path` cannot be loaded ("" if it can); cached per file version."""
    tinysoundfont, reason = _import_synth()
    if tinysoundfont is None:
        return reason
    try:
        tinysoundfont.Synth().sfload(path)
    except RuntimeError as error:
        return (f"the soundfont {path} cannot be loaded ({error}); set {SOUNDFONT_ENV} to "
                "a working .sf2 file")
    return ""


def _no_soundfont_reason() -> str:
    configured = os.environ.get(SOUNDFONT_ENV)
    where = (f"{SOUNDFONT_ENV}={configured} is not a file, and " if configured else "")
    return (f"no General MIDI soundfont found: {where}the pretty_midi package, which ships "
            f"{PRETTY_MIDI_SOUNDFONT}, is not installed. Install it (pip install pretty_midi) "
            f"or set {SOUNDFONT_ENV} to the path of an .sf2 file")


def _synth_and_soundfont():
    """(tinysoundfont module, soundfont path), or AudioUnavailable saying what to do."""
    tinysoundfont, reason = _import_synth()
    if tinysoundfont is None:
        raise AudioUnavailable(reason)
    path = soundfont_path()
    if path is None:
        raise AudioUnavailable(_no_soundfont_reason())
    try:
        stat = path.stat()
    except OSError as error:
        raise AudioUnavailable(f"cannot read the soundfont {path}: {error.strerror}") from None
    problem = _soundfont_problem(str(path), stat.st_mtime_ns, stat.st_size)
    if problem:
        raise AudioUnavailable(problem)
    return tinysoundfont, path


def audio_available() -> tuple[bool, str]:
    """(True, "") if render_wav can work here, else (False, the reason and the fix).

    Cheap after the first call: the import and the soundfont check are cached
    (per soundfont file), only the soundfont lookup is repeated.
    """
    try:
        _synth_and_soundfont()
    except AudioUnavailable as error:
        return False, str(error)
    return True, ""


def _read_midi(midi: bytes) -> tuple[list[tuple[float, mido.Message]], float]:
    """The channel messages of a MIDI file at their times in seconds, and its length."""
    if not isinstance(midi, (bytes, bytearray, memoryview)):
        raise PerfRNNError(f"render_wav needs the bytes of a MIDI file, got {type(midi).__name__}")
    if not midi:
        raise PerfRNNError("cannot render audio: the MIDI file is empty")
    try:
        midi_file = mido.MidiFile(file=io.BytesIO(bytes(midi)))
        if midi_file.type == 2:
            raise PerfRNNError("cannot render audio for a type 2 MIDI file (independent "
                               "sequences); save it as type 0 or 1")
        now, events = 0.0, []
        for message in midi_file:  # merged tracks; message.time is seconds since the last
            now += message.time
            if not message.is_meta and hasattr(message, "channel"):
                events.append((now, message))
    except PerfRNNError:
        raise
    except Exception as error:  # mido raises many types for malformed files
        raise PerfRNNError(f"cannot render audio: the MIDI file is corrupt or not a Standard "
                           f"MIDI File ({type(error).__name__}: {error})") from None
    if not math.isfinite(now):
        raise PerfRNNError("cannot render audio: the MIDI file's timing is invalid")
    return events, now


class _Player:
    """Sends MIDI channel messages to a tinysoundfont Synth, with a sustain pedal."""

    def __init__(self, synth, sfid: int):
        self.synth = synth
        self.pedal = [False] * 16
        self.held: list[set[int]] = [set() for _ in range(16)]  # note-offs the pedal holds
        for channel in range(16):
            self._select(channel, sfid)

    def _select(self, channel: int, sfid: int) -> None:
        try:  # piano everywhere, the standard kit (bank 128, preset 0) on channel 10
            self.synth.program_select(channel, sfid, 0, 0, is_drums=channel == DRUM_CHANNEL)
        except RuntimeError:
            pass  # a soundfont without preset 0 keeps TinySoundFont's default preset

    def send(self, message: mido.Message) -> None:
        synth, channel, kind = self.synth, message.channel, message.type
        if kind == "note_on" and message.velocity > 0:
            if message.note in self.held[channel]:  # a string struck again: damp the old note
                self.held[channel].discard(message.note)
                synth.noteoff(channel, message.note)
            synth.noteon(channel, message.note, message.velocity)
        elif kind in ("note_on", "note_off"):
            if self.pedal[channel]:
                self.held[channel].add(message.note)
            else:
                synth.noteoff(channel, message.note)
        elif kind == "program_change":
            try:
                synth.program_change(channel, message.program,
                                     is_drums=channel == DRUM_CHANNEL)
            except RuntimeError:
                pass  # not in this soundfont: keep the current preset
        elif kind == "control_change":
            self._control(channel, message.control, message.value)
        elif kind == "pitchwheel":
            synth.pitchbend(channel, message.pitch + 8192)

    def _control(self, channel: int, control: int, value: int) -> None:
        if control == _SUSTAIN:
            self.pedal[channel] = value >= 64
            if not self.pedal[channel]:
                self._release(channel)
            return
        if control == _RESET_ALL_CONTROLLERS:
            self.pedal[channel] = False
            self._release(channel)
            self.synth.pitchbend(channel, 8192)
        elif control in _ALL_NOTES_OFF:
            self.held[channel].clear()
        if control in _SYNTH_CONTROLLERS:
            self.synth.control_change(channel, control, value)

    def _release(self, channel: int) -> None:
        for note in sorted(self.held[channel]):
            self.synth.noteoff(channel, note)
        self.held[channel].clear()


def render_wav(midi: bytes, sample_rate: int = DEFAULT_SAMPLE_RATE, tail_seconds: float = 1.0,
               *, max_seconds: float = MAX_RENDER_SECONDS) -> bytes:
    """The MIDI file rendered with the GM soundfont, as the bytes of a WAV file.

    Args:
      midi: The bytes of a Standard MIDI File (type 0 or 1).
      sample_rate: Samples per second of the WAV file (8000 to 192000).
      tail_seconds: Audio kept after the MIDI file's end, for the release of the
        last notes.
      max_seconds: The longest audio (MIDI length plus tail) to render.

    Returns:
      A 16-bit stereo PCM WAV file of round((MIDI length + tail_seconds) *
      sample_rate) frames, its peak at most PEAK_LIMIT (-1 dBFS).

    Raises:
      AudioUnavailable: Without tinysoundfont or a soundfont.
      PerfRNNError: For a corrupt MIDI file, bad arguments or audio too long.
    """
    return _wav_bytes(render_audio(midi, sample_rate, tail_seconds, max_seconds=max_seconds),
                      sample_rate)


def render_mp3(midi: bytes, sample_rate: int = DEFAULT_SAMPLE_RATE, tail_seconds: float = 1.0,
               *, max_seconds: float = MAX_RENDER_SECONDS,
               bitrate: int = MP3_DOWNLOAD_BITRATE) -> bytes:
    """The MIDI file rendered as `render_wav` renders it, encoded as MP3 (LAME,
    through the `lameenc` wheel the radio uses) at `bitrate` kbit/s, stereo.

    Raises:
      AudioUnavailable: Without tinysoundfont, a soundfont or lameenc.
      PerfRNNError: As `render_wav`.
    """
    try:
        import lameenc
    except ImportError:
        raise AudioUnavailable("the MP3 encoder is not installed; pip install "
                               "lameenc==1.9.0") from None
    pcm = _pcm16(render_audio(midi, sample_rate, tail_seconds, max_seconds=max_seconds))
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(2)
    encoder.set_quality(MP3_DOWNLOAD_QUALITY)
    return bytes(encoder.encode(pcm.tobytes()) + encoder.flush())


def render_audio(midi: bytes, sample_rate: int = DEFAULT_SAMPLE_RATE, tail_seconds: float = 1.0,
                 *, max_seconds: float = MAX_RENDER_SECONDS) -> np.ndarray:
    """The MIDI file rendered with the GM soundfont: float32 stereo frames
    [round((MIDI length + tail_seconds) * sample_rate), 2], as loud as the
    synthesizer made them; the arguments and errors are `render_wav`'s."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) \
            or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise PerfRNNError(f"sample_rate must be a whole number of Hz from {MIN_SAMPLE_RATE} "
                           f"to {MAX_SAMPLE_RATE}, got {sample_rate!r}")
    if not (isinstance(tail_seconds, (int, float)) and math.isfinite(tail_seconds)
            and tail_seconds >= 0):
        raise PerfRNNError(f"tail_seconds must be 0 or more seconds, got {tail_seconds!r}")
    tinysoundfont, path = _synth_and_soundfont()
    events, length = _read_midi(midi)
    if length + tail_seconds > max_seconds:
        raise PerfRNNError(f"the MIDI file lasts {length:.0f} s; audio is rendered for at most "
                           f"{max_seconds:g} s")

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    try:
        sfid = synth.sfload(str(path), max_voices=MAX_VOICES)
    except RuntimeError as error:
        raise AudioUnavailable(f"the soundfont {path} cannot be loaded ({error})") from None
    player = _Player(synth, sfid)
    frames = round((length + tail_seconds) * sample_rate)
    audio = np.zeros((frames, 2), dtype=np.float32)
    raw = memoryview(audio).cast("B")
    done = 0
    for seconds, message in events:
        at = min(round(seconds * sample_rate), frames)
        if at > done:
            synth.generate(at - done, buffer=raw[done * _BYTES_PER_FRAME:at * _BYTES_PER_FRAME])
            done = at
        player.send(message)
    if frames > done:
        synth.generate(frames - done, buffer=raw[done * _BYTES_PER_FRAME:])
    del raw
    return audio


def _gain(audio: np.ndarray) -> float:
    """The factor from float frames to 16-bit samples, turned down if the
    peak passes PEAK_LIMIT."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 32767 * (PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0)


def _pcm16(audio: np.ndarray) -> np.ndarray:
    """Float stereo frames as 16-bit samples (see `_gain`)."""
    return np.rint(audio * _gain(audio)).astype("<i2")


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Float stereo frames as a 16-bit WAV file, turned down if its peak passes PEAK_LIMIT."""
    gain = _gain(audio)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        step = 1 << 16
        for start in range(0, len(audio), step):  # in pieces: no second full-size array
            chunk = np.rint(audio[start:start + step] * gain).astype("<i2")
            wav.writeframes(chunk.tobytes())
    return buffer.getvalue()


def render_wav_file(midi_path: str | os.PathLike, wav_path: str | os.PathLike,
                    **kwargs) -> Path:
    """Render the MIDI file at midi_path into a WAV file at wav_path; returns its path.

    The keyword arguments are those of render_wav. Parent folders are created.
    """
    try:
        midi = Path(midi_path).read_bytes()
    except OSError as error:
        raise PerfRNNError(f"cannot read {midi_path}: {error.strerror}") from None
    data = render_wav(midi, **kwargs)  # before touching the disk: errors leave no file
    wav_path = Path(wav_path)
    try:
        wav_path.parent.mkdir(parents=True, exist_ok=True)
        wav_path.write_bytes(data)
    except OSError as error:
        raise PerfRNNError(f"cannot write {wav_path}: {error.strerror}") from None
    return wav_path


class StreamSynth:
    """A synthesizer that plays notes as they come and renders audio without a
    break: one TinySoundFont instance for a whole stream, so notes ring across
    the joins between chunks and nothing restarts (radio).

    Args:
      programs: GM program per MIDI channel (channel 9 plays the drum kits).
      sample_rate: Samples per second.

    Raises:
      AudioUnavailable: Without tinysoundfont or a soundfont.
    """

    def __init__(self, programs: dict[int, int], sample_rate: int = DEFAULT_SAMPLE_RATE):
        tinysoundfont, path = _synth_and_soundfont()
        self.sample_rate = int(sample_rate)
        self.synth = tinysoundfont.Synth(samplerate=self.sample_rate)
        try:
            sfid = self.synth.sfload(str(path), max_voices=MAX_VOICES)
        except RuntimeError as error:
            raise AudioUnavailable(f"the soundfont {path} cannot be loaded ({error})") from None
        self.player = _Player(self.synth, sfid)
        for channel, program in programs.items():
            self.player.send(mido.Message("program_change", channel=channel, program=program))
        self.frames = 0  # rendered so far

    def render(self, messages: list[tuple[float, mido.Message]], until: float) -> np.ndarray:
        """Plays `messages` ((seconds, channel message), in time order, none before
        what was rendered) and returns the audio from the last call up to
        `until` seconds: float32 stereo frames, clipped at PEAK_LIMIT."""
        end = max(round(until * self.sample_rate), self.frames)
        audio = np.zeros((end - self.frames, 2), dtype=np.float32)
        raw = memoryview(audio).cast("B")
        start = self.frames
        for seconds, message in messages:
            at = min(max(round(seconds * self.sample_rate), self.frames), end)
            if at > self.frames:
                self.synth.generate(at - self.frames, buffer=raw[
                    (self.frames - start) * _BYTES_PER_FRAME:(at - start) * _BYTES_PER_FRAME])
                self.frames = at
            self.player.send(message)
        if end > self.frames:
            self.synth.generate(end - self.frames,
                                buffer=raw[(self.frames - start) * _BYTES_PER_FRAME:])
            self.frames = end
        del raw
        return np.clip(audio, -PEAK_LIMIT, PEAK_LIMIT)
