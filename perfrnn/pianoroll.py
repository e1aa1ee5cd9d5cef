"""A piano-roll picture of a NoteSequence, as PNG bytes, for the website and reports.

Time in seconds runs along x and MIDI pitch up y. Each track role (a note's
`instrument` indexes the roles) has its own colour, named in a legend above the
plot; a note's velocity sets its opacity. Pitched notes are bars from start to
end; drum notes, whose length means nothing, are short vertical ticks at their
onset and GM drum key. Each track is drawn as one collection, so pieces with
many thousands of notes render quickly.

matplotlib is imported inside the functions, and only its object-oriented API
(`Figure` with an Agg canvas) is used: no pyplot global state, safe to call from
several web-server threads at once.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from note_seq.protobuf import music_pb2

from perfrnn.configs import TrackRole

_DPI = 100
# matplotlib's "tab10" palette, so every picture uses the same colours per track index.
TRACK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_MIN_ALPHA = 0.25  # opacity of a velocity-1 note; velocity 127 is opaque


def _track_label(index: int, is_drum: bool, tracks: Sequence[TrackRole] | None) -> str:
    if tracks is not None and 0 <= index < len(tracks):
        return tracks[index].name
    return "drums" if is_drum else f"track {index}"


def _track_colour(index: int, used: set[str]) -> str:
    """The track index's palette colour, or the next one not yet used in this picture."""
    for offset in range(len(TRACK_COLOURS)):
        colour = TRACK_COLOURS[(index + offset) % len(TRACK_COLOURS)]
        if colour not in used:
            break
    used.add(colour)
    return colour


def _beat_lines(sequence: music_pb2.NoteSequence, end_seconds: float,
                width_px: int) -> list[float]:
    """Beat times (or bar times, when beats would be under 6 px apart); [] if too dense.

    Beats are quarter notes at the first tempo; bars follow the first time signature."""
    qpm = sequence.tempos[0].qpm if sequence.tempos and sequence.tempos[0].qpm > 0 else 120.0
    beat = 60.0 / qpm
    signature = sequence.time_signatures[0] if sequence.time_signatures else None
    bar = (signature.numerator * 4 / signature.denominator
           if signature and signature.numerator > 0 and signature.denominator > 0 else 4)
    for every in (1, bar):
        count = int(end_seconds / (beat * every))
        if count and width_px / count >= 6:
            return [i * beat * every for i in range(count + 1)]
    return []


def _new_figure(width_px: int, height_px: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure) -> bytes:
    """A matplotlib Figure rendered as PNG bytes at its own size in pixels."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _draw_sections(axes, sequence: music_pb2.NoteSequence, low: float, high: float) -> None:
    """A dashed line and the marker's name (Intro, A, B, Fill, Ending) at each
    section start of the sequence's section annotations."""
    from perfrnn.song_form import MARKERS

    for section in sequence.section_annotations:
        if not 0 <= section.section_id < len(MARKERS):
            continue
        axes.axvline(section.time, color="0.35", linewidth=0.9, linestyle="--", zorder=1)
        axes.text(section.time, high, f" {MARKERS[section.section_id]}", va="top",
                  ha="left", fontsize=7, color="0.25")


def pianoroll_png(sequence: music_pb2.NoteSequence, tracks: Sequence[TrackRole] | None = None,
                  width_px: int = 1200, height_px: int = 400,
                  title: str | None = None) -> bytes:
    """A piano roll of `sequence` as PNG bytes of exactly width_px x height_px pixels.

    Args:
      sequence: The music; times in seconds, `instrument` the track-role index.
      tracks: The style's track roles, to name the legend entries; without
        them tracks are called "track N" (or "drums").
      width_px, height_px: The picture's size in pixels.
      title: Drawn above the plot when given.

    An empty sequence gives a picture that says "no notes".
    """
    import numpy as np
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    figure = _new_figure(width_px, height_px)
    top_px = 28 + (22 if title else 0)
    axes = figure.add_axes((60 / width_px, 40 / height_px,
                            1 - 75 / width_px, 1 - (40 + top_px) / height_px))
    if title:
        figure.suptitle(title, y=1 - 6 / height_px, va="top", fontsize=11)
    notes = list(sequence.notes)
    if not notes:
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no notes", ha="center", va="center", fontsize=14,
                  color="0.4", transform=axes.transAxes)
        return figure_png(figure)

    starts = np.array([note.start_time for note in notes])
    ends = np.maximum(np.array([note.end_time for note in notes]), starts)
    pitches = np.array([note.pitch for note in notes], dtype=np.float64)
    alphas = _MIN_ALPHA + (1 - _MIN_ALPHA) * np.clip(
        np.array([note.velocity for note in notes]), 1, 127) / 127
    drums = np.array([note.is_drum for note in notes])
    instruments = np.array([note.instrument for note in notes])
    end_seconds = max(float(ends.max()), 1e-3)

    handles = []
    keys = sorted({(int(index), bool(drum)) for index, drum in zip(instruments, drums)})
    used: set[str] = set()
    for index, is_drum in keys:
        chosen = (instruments == index) & (drums == is_drum)
        colour = _track_colour(index, used)
        rgba = np.column_stack([np.tile(to_rgb(colour), (chosen.sum(), 1)), alphas[chosen]])
        x0, x1, y = starts[chosen], ends[chosen], pitches[chosen]
        if is_drum:
            segments = np.stack([np.column_stack([x0, y - 0.45]),
                                 np.column_stack([x0, y + 0.45])], axis=1)
            axes.add_collection(LineCollection(segments, colors=rgba, linewidths=1.5))
        else:
            corners = np.stack([np.column_stack([x0, y - 0.4]), np.column_stack([x1, y - 0.4]),
                                np.column_stack([x1, y + 0.4]), np.column_stack([x0, y + 0.4])],
                               axis=1)
            # A thin edge in the same colour keeps notes shorter than a pixel visible.
            axes.add_collection(PolyCollection(corners, facecolors=rgba, edgecolors=rgba,
                                               linewidths=0.4))
        handles.append(Patch(color=colour, label=_track_label(index, is_drum, tracks)))

    low, high = pitches.min() - 2, pitches.max() + 2
    axes.set_xlim(-0.005 * end_seconds, end_seconds * 1.01)
    axes.set_ylim(low, high)
    beat_times = _beat_lines(sequence, end_seconds, width_px)
    if beat_times:
        axes.vlines(beat_times, low, high, colors="0.9", linewidths=0.5, zorder=0)
    _draw_sections(axes, sequence, low, high)
    octaves = [pitch for pitch in range(0, 128, 12) if low <= pitch <= high]
    if len(octaves) < 2:
        octaves = [pitch for pitch in range(int(low) + 1, int(high) + 1)
                   if pitch % 12 in (0, 4, 7)]
    axes.set_yticks(octaves, [f"{_NOTE_NAMES[p % 12]}{p // 12 - 1}" for p in octaves])
    axes.set_xlabel("time (s)")
    axes.set_ylabel("pitch")
    axes.tick_params(labelsize=8)
    figure.legend(handles=handles, loc="upper right", ncols=len(handles), frameon=False,
                  fontsize=8, bbox_to_anchor=(1 - 10 / width_px, 1 - (top_px - 26) / height_px))
    return figure_png(figure)


def write_pianoroll(sequence: music_pb2.NoteSequence, path: str | Path, **kwargs) -> Path:
    """Write `pianoroll_png(sequence, **kwargs)` to `path`; returns the path."""
    path = Path(path)
    path.write_bytes(pianoroll_png(sequence, **kwargs))
    return path
