"""The table of model configurations, in the manner of Magenta's `default_configs`.

Each entry names an event encoding (note-seq's Performance encoding with its
optional control signals), the network's layer sizes, the training settings and
the parts (track roles) the style writes. The single-track entries match
Magenta's `performance_rnn` configurations exactly, so that Magenta's own
bundles load and bundles we write for them load in Magenta.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from perfrnn.errors import PerfRNNError

# General MIDI numbers used in defaults (0-based program numbers).
GM_ACOUSTIC_GRAND_PIANO = 0
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
# Magenta ends notes that are still sounding after this many seconds.
MAX_NOTE_DURATION_SECONDS = 5.0


@dataclass(frozen=True)
class TrackRole:
    """One part a style writes, such as "piano", "drums" or "bass".

    Attributes:
      name: The role's name; also the MIDI track name.
      program: The default General MIDI program (0-127). For a drum part this
        is the GM2 drum-kit number sent as a program change on channel 10.
      is_drum: True for a drum kit; its notes go on MIDI channel 10.
    """

    name: str
    program: int = GM_ACOUSTIC_GRAND_PIANO
    is_drum: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrackRole:
        return cls(name=str(data["name"]), program=int(data.get("program", 0)),
                   is_drum=bool(data.get("is_drum", False)))


def played_tracks(tracks: Sequence[TrackRole], parts: Sequence[str] = ()) -> tuple[TrackRole, ...]:
    """The tracks a style plays: all of them, or those named in `parts` (a drum
    style of a band base plays only its kit)."""
    return tuple(track for track in tracks if not parts or track.name in parts)


PIANO_TRACKS = (TrackRole("piano", GM_ACOUSTIC_GRAND_PIANO),)
# The roles of multi-track (band) styles, in the order the encoding fixes:
# drums, bass, harmony, lead. Styles choose their own programs and names.
BAND_TRACKS = (
    TrackRole("drums", 0, is_drum=True),   # GM2 standard kit
    TrackRole("bass", 33),                 # electric bass (finger)
    TrackRole("harmony", 29),              # overdriven guitar
    TrackRole("lead", 30),                 # distortion guitar
)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a model's encoding, shape and training settings.

    Times are in steps of 1/steps_per_second seconds; densities in notes per
    second; window sizes in seconds.
    """

    id: str
    description: str
    num_velocity_bins: int = 32
    max_shift_steps: int = 100
    steps_per_second: int = 100
    # Note-density control: bin boundaries in notes per second (None: off).
    density_bin_ranges: tuple[float, ...] | None = None
    density_window_seconds: float = 3.0
    # Pitch-class-histogram ("key") control: window in seconds (None: off).
    pitch_histogram_window_seconds: float | None = None
    # Metric encodings: time moves in steps of 1/steps_per_quarter of a quarter
    # note (None: in steps of 1/steps_per_second seconds; see perfrnn.metre).
    steps_per_quarter: int | None = None
    # A base model's style input: the styles it learned, in input order (empty:
    # none). A metric encoding then ends each control block with one weight per
    # style (perfrnn.metric_encoding.MetricEncoding.style_vector).
    style_names: tuple[str, ...] = ()
    # Metric encodings: the song plan's chords and sections as row inputs per
    # bar, and the bar lookback as history inputs (perfrnn.song_form,
    # perfrnn.lookback).
    song_inputs: bool = False
    rnn_layer_sizes: tuple[int, ...] = (512, 512, 512)
    tracks: tuple[TrackRole, ...] = PIANO_TRACKS
    # Training settings (Magenta's defaults).
    batch_size: int = 64
    learning_rate: float = 1e-3
    clip_norm: float = 3.0
    dropout_keep_prob: float = 1.0
    # Augmentation applied while training.
    transpose_range: tuple[int, int] = (-3, 3)
    stretch_factors: tuple[float, ...] = (0.95, 0.975, 1.0, 1.025, 1.05)
    notes: dict = field(default_factory=dict, compare=False)

    @property
    def is_multitrack(self) -> bool:
        """True for band styles: one joint stream of several parts (perfrnn.multitrack)."""
        return len(self.tracks) > 1

    @property
    def is_metric(self) -> bool:
        """True when time is counted in beats, so bars line up at any tempo (perfrnn.metre)."""
        return self.steps_per_quarter is not None

    @property
    def has_style_input(self) -> bool:
        """True for a base model and the styles made from it: the network is told
        which style (or blend of styles) to play."""
        return bool(self.style_names)

    @property
    def has_density_control(self) -> bool:
        return self.density_bin_ranges is not None

    @property
    def has_pitch_histogram_control(self) -> bool:
        return self.pitch_histogram_window_seconds is not None

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (e.g. smaller `rnn_layer_sizes`)."""
        return dataclasses.replace(self, **changes)


_DENSITY_BINS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# Metric styles: 12 steps per quarter note hold sixteenths (3 steps), eighth
# triplets (4) and sixteenth triplets (2); shifts up to one 4/4 bar (48 steps).
# Stretching time is meaningless when time is counted in beats.
_METRIC = dict(steps_per_quarter=12, max_shift_steps=48, stretch_factors=(1.0,))

DEFAULT_CONFIG_ID = "performance_with_dynamics"
"""The configuration a corpus is prepared and trained for when none is named
(Magenta's default Performance RNN)."""

DEFAULT_CONFIGS: dict[str, ModelConfig] = {
    config.id: config
    for config in (
        ModelConfig(
            id="performance",
            description="Performance RNN",
            num_velocity_bins=0,
        ),
        ModelConfig(
            id="performance_with_dynamics",
            description="Performance RNN with dynamics",
        ),
        ModelConfig(
            id="density_conditioned_performance_with_dynamics",
            description="Note-density-conditioned Performance RNN + dynamics",
            density_bin_ranges=_DENSITY_BINS,
        ),
        ModelConfig(
            id="pitch_conditioned_performance_with_dynamics",
            description="Pitch-histogram-conditioned Performance RNN",
            pitch_histogram_window_seconds=5.0,
        ),
        ModelConfig(
            id="multiconditioned_performance_with_dynamics",
            description="Density- and pitch-conditioned Performance RNN",
            density_bin_ranges=_DENSITY_BINS,
            pitch_histogram_window_seconds=5.0,
        ),
        ModelConfig(
            id="multitrack_performance_with_dynamics",
            description="Multi-track Performance RNN + dynamics: drums, bass, harmony, lead",
            tracks=BAND_TRACKS,
        ),
        ModelConfig(
            id="metric_drums",
            description="Metric drum RNN: a kit on a beat grid, knowing its place in the bar",
            tracks=(TrackRole("drums", 0, is_drum=True),),
            transpose_range=(0, 0),
            **_METRIC,
        ),
        ModelConfig(
            id="metric_band",
            description="Metric band RNN: drums, bass, harmony, lead on a beat grid",
            tracks=BAND_TRACKS,
            **_METRIC,
        ),
        ModelConfig(
            id="metric_drums_song",
            description="Metric drum RNN that follows a song's sections and looks back "
                        "one, two and four bars",
            tracks=(TrackRole("drums", 0, is_drum=True),),
            transpose_range=(0, 0),
            song_inputs=True,
            **_METRIC,
        ),
        ModelConfig(
            id="metric_band_song",
            description="Metric band RNN that follows a song's chords and sections and "
                        "looks back one, two and four bars",
            tracks=BAND_TRACKS,
            song_inputs=True,
            **_METRIC,
        ),
    )
}


def get_config(config_id: str) -> ModelConfig:
    """Looks up a configuration by its id (Magenta's generator id)."""
    try:
        return DEFAULT_CONFIGS[config_id]
    except KeyError:
        known = ", ".join(sorted(DEFAULT_CONFIGS))
        raise PerfRNNError(
            f"unknown model configuration {config_id!r}; known ones are: {known}"
        ) from None
