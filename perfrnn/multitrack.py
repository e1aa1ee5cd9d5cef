"""The multi-track event encoding for band styles (rock, electronic, ...).

Magenta's Performance vocabulary is extended with note-on and note-off events
per track role, and one LSTM generates all parts as one joint stream:

    index                                   event
    r * 256 + pitch                         note-on of `pitch` in role r
    r * 256 + 128 + pitch                   note-off of `pitch` in role r
    R * 256 + s - 1   (s = 1..max_shift)    time shift of s steps
    R * 256 + max_shift + b - 1  (b = 1..)  velocity bin b (shared by all roles)

for R roles in the configuration's order: drums, bass, harmony, lead (so 1,156
classes with 100 shifts and 32 velocity bins). Within one time step note-offs
come before note-ons and a velocity event precedes a note-on whose velocity
bin differs from the current one, as in note-seq's Performance.

In a NoteSequence a note's `instrument` is the index of its role. Music read
from files is mapped onto the roles by `assign_roles`, from each part's GM
program, channel (drums) and shape (chords or single lines, register).
"""

from __future__ import annotations

import numpy as np
from note_seq import performance_lib, sequences_lib
from note_seq.protobuf import music_pb2

from perfrnn.configs import MAX_NOTE_DURATION_SECONDS, ModelConfig, TrackRole
from perfrnn.encoding import InputPlan, SecondsTime
from perfrnn.errors import PerfRNNError

PITCHES = 128
EVENTS_PER_ROLE = 2 * PITCHES
# Role semantics by position in a multi-track configuration's `tracks`.
ROLE_DRUMS, ROLE_BASS, ROLE_HARMONY, ROLE_LEAD = 0, 1, 2, 3
ROLE_NAMES = ("drums", "bass", "harmony", "lead")

# General MIDI program families (0-based programs).
BASS_PROGRAMS = range(32, 40)
LEAD_PROGRAMS = (*range(40, 48), *range(56, 88))  # solo strings, brass, reed, pipe, synth lead
PAD_PROGRAMS = range(88, 104)  # synth pads and effects: harmony even as single lines
# A pitched part counts as a single line when fewer than this share of its
# onsets coincide with another of its onsets.
CHORD_ONSET_SHARE = 0.25
BASS_MEAN_PITCH = 48  # C3: a single line mostly below this is a bass line


class MultiTrackEncoding(SecondsTime):
    """The event vocabulary and model-input layout of a multi-track ModelConfig.

    It offers the same methods as `PerformanceEncoding` that the sampler and
    the training code use; multi-track styles take no control signals.
    """

    control_signals: list = []
    control_size = 0
    row_input_size = 0

    def __init__(self, config: ModelConfig):
        if config.has_density_control or config.has_pitch_histogram_control:
            raise PerfRNNError(f"configuration {config.id!r}: multi-track styles take no "
                               "note-density or key controls")
        if not config.num_velocity_bins:
            raise PerfRNNError(f"configuration {config.id!r}: multi-track styles need "
                               "velocity bins")
        self.config = config
        self.tracks = tuple(config.tracks)
        self.time_unit = f"1/{config.steps_per_second} second"
        self.num_roles = len(self.tracks)
        self._shift_base = self.num_roles * EVENTS_PER_ROLE
        self._velocity_base = self._shift_base + config.max_shift_steps

    # ----- sizes and tables -----------------------------------------------------

    @property
    def num_classes(self) -> int:
        return self._velocity_base + self.config.num_velocity_bins

    @property
    def input_size(self) -> int:
        return self.num_classes

    def note_on(self, role: int, pitch: int) -> int:
        return role * EVENTS_PER_ROLE + pitch

    def note_off(self, role: int, pitch: int) -> int:
        return role * EVENTS_PER_ROLE + PITCHES + pitch

    def time_shift(self, steps: int) -> int:
        """The event index of a shift of 1..max_shift_steps steps."""
        return self._shift_base + steps - 1

    def velocity(self, velocity_bin: int) -> int:
        return self._velocity_base + velocity_bin - 1

    def time_shift_steps(self) -> np.ndarray:
        """Steps each event index advances time by (0 for non-time-shift events)."""
        steps = np.zeros(self.num_classes, np.int32)
        steps[self._shift_base:self._velocity_base] = np.arange(
            1, self.config.max_shift_steps + 1)
        return steps

    def velocities(self) -> np.ndarray:
        """For each event index, the MIDI velocity it sets for the notes after it
        (0: not a velocity event)."""
        table = np.zeros(self.num_classes, np.int32)
        bins = self.config.num_velocity_bins
        for velocity_bin in range(1, bins + 1):
            table[self.velocity(velocity_bin)] = performance_lib.velocity_bin_to_velocity(
                velocity_bin, bins)
        return table

    def note_keys(self) -> tuple[np.ndarray, np.ndarray, int]:
        """For each event index, the note (role * 128 + pitch) it starts and the
        note it ends (-1: none), and the number of notes."""
        on_keys = np.full(self.num_classes, -1, np.int32)
        off_keys = np.full(self.num_classes, -1, np.int32)
        for role in range(self.num_roles):
            for pitch in range(PITCHES):
                on_keys[self.note_on(role, pitch)] = role * PITCHES + pitch
                off_keys[self.note_off(role, pitch)] = role * PITCHES + pitch
        return on_keys, off_keys, self.num_roles * PITCHES

    def start_event(self) -> int:
        """A mid-range velocity: takes no time, so output starts at 0 s."""
        return self.velocity((self.config.num_velocity_bins + 1) // 2)

    def time_shift_events(self, steps: int) -> list[int]:
        """Time-shift events that together advance `steps` steps."""
        events = []
        while steps > 0:
            shift = min(self.config.max_shift_steps, steps)
            events.append(self.time_shift(shift))
            steps -= shift
        return events

    def describe_event(self, index: int) -> str:
        """A readable name such as "bass note-on 40" or "shift 12" (for debugging)."""
        if index < self._shift_base:
            role, rest = divmod(int(index), EVENTS_PER_ROLE)
            kind = "note-on" if rest < PITCHES else "note-off"
            return f"{self.tracks[role].name} {kind} {rest % PITCHES}"
        if index < self._velocity_base:
            return f"shift {index - self._shift_base + 1}"
        return f"velocity {index - self._velocity_base + 1}"

    # ----- sequences <-> events ---------------------------------------------------

    def events_from_sequence(self, sequence: music_pb2.NoteSequence,
                             total_steps: int | None = None) -> np.ndarray:
        """Event indices of a NoteSequence whose notes' `instrument` are role indices.

        Times are quantised to 1/steps_per_second s; a note lasts at least one
        step; overlapping notes of one pitch in one role are cut where the next
        starts. Trailing time shifts pad the result to `total_steps` if given.
        """
        config = self.config
        sustained = sequences_lib.apply_sustain_control_changes(sequence)
        starts = self.onset_steps_at(sustained, [note.start_time for note in sustained.notes])
        ends = self.steps_at(sustained, [note.end_time for note in sustained.notes])
        by_key: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for note, start, end in zip(sustained.notes, starts.tolist(), ends.tolist()):
            role = 0 if self.num_roles == 1 else note.instrument
            if not 0 <= role < self.num_roles:
                raise PerfRNNError(f"a note has role {role}, but the style has only "
                                   f"{self.num_roles} parts; map parts with assign_roles")
            end = max(end, start + 1)
            by_key.setdefault((role, note.pitch), []).append((start, end, note.velocity))
        actions = []  # (step, 0 = off / 1 = on, role, pitch, velocity bin)
        for (role, pitch), notes in by_key.items():
            notes.sort()
            for index, (start, end, velocity) in enumerate(notes):
                if index + 1 < len(notes):
                    end = min(end, max(notes[index + 1][0], start + 1))
                if index and start < notes[index - 1][1]:
                    continue  # same start as the previous note: merged into it
                velocity_bin = performance_lib.velocity_to_bin(
                    min(max(velocity, 1), 127), config.num_velocity_bins)
                actions.append((start, 1, role, pitch, velocity_bin))
                actions.append((end, 0, role, pitch, 0))
        actions.sort()
        events: list[int] = []
        now = 0
        velocity_bin = None
        for step, is_on, role, pitch, note_bin in actions:
            events.extend(self.time_shift_events(step - now))
            now = max(now, step)
            if is_on:
                if note_bin != velocity_bin:
                    events.append(self.velocity(note_bin))
                    velocity_bin = note_bin
                events.append(self.note_on(role, pitch))
            else:
                events.append(self.note_off(role, pitch))
        if total_steps is not None:
            events.extend(self.time_shift_events(total_steps - now))
        return np.array(events, np.int32)

    def steps_at(self, sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
        """The step (int) nearest each time in `seconds` of `sequence`."""
        return np.rint(np.asarray(seconds, np.float64)
                       * self.config.steps_per_second).astype(np.int64)

    def onset_steps_at(self, sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
        """The step where a note starting at each time in `seconds` starts."""
        return self.steps_at(sequence, seconds)

    def sequence_from_events(self, events: np.ndarray, total_seconds: float | None = None,
                             steps_per_second: float | None = None) -> music_pb2.NoteSequence:
        """Decodes event indices to a NoteSequence (times in seconds).

        Each note's `instrument` is its role index, `program` the role's GM
        program and `is_drum` the role's. Notes still sounding at the end are
        ended there, none lasts over MAX_NOTE_DURATION_SECONDS, a note-on of a
        pitch already sounding ends the earlier note, and note-offs without a
        note-on are dropped. `total_seconds` sets the length and cuts past it.
        `steps_per_second` is the rate steps are played at (default the
        configuration's).
        """
        config = self.config
        rate = steps_per_second or config.steps_per_second
        max_steps = int(round(MAX_NOTE_DURATION_SECONDS * rate))
        sequence = music_pb2.NoteSequence()
        sequence.ticks_per_quarter = 220
        active: dict[tuple[int, int], tuple[int, int]] = {}  # -> (start step, velocity)
        now = 0
        velocity = performance_lib.velocity_bin_to_velocity(
            (config.num_velocity_bins + 1) // 2, config.num_velocity_bins)
        limit = None if total_seconds is None else int(round(total_seconds * rate))

        def end_note(key: tuple[int, int], end: int) -> None:
            start, note_velocity = active.pop(key)
            end = min(end, start + max_steps)
            if limit is not None:
                end = min(end, limit)
            if end <= start:
                return
            role, pitch = key
            track = self.tracks[role]
            note = sequence.notes.add(
                pitch=pitch, velocity=note_velocity, start_time=start / rate,
                end_time=end / rate, instrument=role, program=track.program,
                is_drum=track.is_drum)
            sequence.total_time = max(sequence.total_time, note.end_time)

        for index in np.asarray(events, np.int64):
            index = int(index)
            if not 0 <= index < self.num_classes:
                raise PerfRNNError(f"event {index} is outside the vocabulary "
                                   f"(0..{self.num_classes - 1})")
            if index >= self._velocity_base:
                velocity = performance_lib.velocity_bin_to_velocity(
                    index - self._velocity_base + 1, config.num_velocity_bins)
            elif index >= self._shift_base:
                now += index - self._shift_base + 1
            else:
                role, rest = divmod(index, EVENTS_PER_ROLE)
                key = (role, rest % PITCHES)
                if rest < PITCHES:
                    if key in active:
                        end_note(key, now)
                    if limit is None or now < limit:
                        active[key] = (now, velocity)
                elif key in active:
                    end_note(key, now)
        for key in list(active):
            end_note(key, now)
        sequence.notes.sort(key=lambda note: (note.start_time, note.instrument, note.pitch))
        if total_seconds is not None:
            sequence.total_time = total_seconds
        else:
            sequence.total_time = max(sequence.total_time, now / rate)
        return sequence

    # ----- model inputs -------------------------------------------------------------

    def inputs_with_controls(self, events: np.ndarray) -> np.ndarray:
        """Model inputs for `events` (no controls: the one-hot rows)."""
        return self.inputs_from_events(events)

    def encode_controls(self, notes_per_second: float | None = None,
                        pitch_histogram: list[float] | None = None) -> np.ndarray:
        if notes_per_second is not None or pitch_histogram is not None:
            raise PerfRNNError("multi-track styles take no note density or key; leave them out")
        return np.zeros(0, np.float32)

    def inputs_from_events(self, events: np.ndarray,
                           control_values: list | None = None) -> np.ndarray:
        """One-hot model inputs [len(events), num_classes]."""
        events = np.asarray(events, np.int64)
        inputs = np.zeros((len(events), self.num_classes), np.float32)
        inputs[np.arange(len(events)), events] = 1.0
        return inputs

    def primer_sequence(self, primer: music_pb2.NoteSequence) -> music_pb2.NoteSequence:
        """The primer's parts on this band's roles (`assign_roles`).

        Raises:
          PerfRNNError: no part of the primer fits a role.
        """
        primer, _ = assign_roles(primer, self.tracks)
        if not primer.notes:
            raise PerfRNNError("the primer has no part this style plays")
        return primer

    def row_inputs(self, plan: InputPlan) -> np.ndarray:
        """No row inputs: one row of width 0."""
        return np.zeros((1, 0), np.float32)

    def inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """The one-hot rows (`inputs_from_events`)."""
        return self.inputs_from_events(events)

    def teacher_inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """The one-hot rows, as `inputs`."""
        return self.inputs_from_events(events)

    def training_controls(self, events: np.ndarray, start: int, used: int,
                          plan: InputPlan) -> np.ndarray:
        """No inputs before the event: [used, 0]."""
        return np.zeros((used, 0), np.float32)


# ----- parts of real music onto roles ---------------------------------------------------


def _role_of_part(notes: list, is_drum: bool, program: int, roles: set[int]) -> int | None:
    """The role index for one part of a file (None: the style has no such role)."""
    if is_drum:
        return ROLE_DRUMS if ROLE_DRUMS in roles else None
    onsets: dict[float, int] = {}
    for note in notes:
        onset = round(note.start_time, 2)
        onsets[onset] = onsets.get(onset, 0) + 1
    chord_share = sum(count for count in onsets.values() if count > 1) / max(len(notes), 1)
    mean_pitch = sum(note.pitch for note in notes) / max(len(notes), 1)
    single_line = chord_share < CHORD_ONSET_SHARE
    if program in BASS_PROGRAMS or (single_line and mean_pitch < BASS_MEAN_PITCH):
        wanted = ROLE_BASS
    elif program in LEAD_PROGRAMS or (single_line and program not in PAD_PROGRAMS):
        wanted = ROLE_LEAD
    else:
        wanted = ROLE_HARMONY
    for role in (wanted, ROLE_HARMONY, ROLE_LEAD, ROLE_BASS):
        if role in roles:
            return role
    return None


def assign_roles(sequence: music_pb2.NoteSequence,
                 tracks: tuple[TrackRole, ...]) -> tuple[music_pb2.NoteSequence, dict]:
    """A copy of `sequence` with each note's `instrument` set to its role index.

    Parts are the (instrument, program, is_drum) groups note-seq's readers
    make, one per MIDI track and channel. Drums (MIDI channel 10) go to the
    drum role; pitched parts by GM program family (basses 32-39 to bass; solo
    strings, brass, reed, pipe and synth leads to lead; keyboards, guitars,
    ensembles and pads to harmony), and parts whose program says little by
    shape: a single line low down is a bass, another single line a lead,
    chords are harmony. Notes of a part the style has no role for are dropped.
    Sustain pedals are applied to note lengths and then dropped.

    Returns:
      The new sequence and a summary {role name: number of source parts}.
    """
    roles = set(range(min(len(tracks), len(ROLE_NAMES))))
    if not tracks or not tracks[ROLE_DRUMS].is_drum:
        roles.discard(ROLE_DRUMS)
    # Pedals are applied per source part first: after the mapping, parts share roles.
    sustained = sequences_lib.apply_sustain_control_changes(sequence)
    parts: dict[tuple[int, int, bool], list] = {}
    for note in sustained.notes:
        parts.setdefault((note.instrument, note.program, note.is_drum), []).append(note)
    result = music_pb2.NoteSequence()
    result.CopyFrom(sequence)
    del result.notes[:]
    del result.pitch_bends[:]
    del result.control_changes[:]
    counts: dict[str, int] = {}
    for (_instrument, program, is_drum), notes in sorted(parts.items()):
        role = _role_of_part(notes, is_drum, program, roles)
        if role is None:
            continue
        counts[tracks[role].name] = counts.get(tracks[role].name, 0) + 1
        for note in notes:
            copy = result.notes.add()
            copy.CopyFrom(note)
            copy.instrument = role
            copy.is_drum = tracks[role].is_drum
    result.total_time = max((note.end_time for note in result.notes), default=0.0)
    return result, counts
