"""Pictures for the evaluation report, as PNG bytes: loss curves and metric histograms.

matplotlib is imported inside the functions and only through `Figure` with an
Agg canvas (no pyplot global state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from perfrnn.music_metrics import METRICS
from perfrnn.pianoroll import figure_png

_REAL_COLOUR = "#1f77b4"
_GENERATED_COLOUR = "#ff7f0e"
_DPI = 100


def _new_figure(width_px: int, height_px: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([math.nan if value is None else value for value in values], np.float64)
    return array[np.isfinite(array)]


def loss_curve_png(history: Sequence[Mapping], width_px: int = 800, height_px: int = 400,
                   title: str | None = "Training loss") -> bytes:
    """Training loss and validation NLL (nats per event) against training step, as PNG.

    `history` items are {"step": int, "train_loss": float, "validation_nll":
    float | None}; points that are None or nan are left out of their line.
    """
    figure = _new_figure(width_px, height_px)
    axes = figure.add_subplot()
    if title:
        axes.set_title(title)
    curves = (("train_loss", "training loss", _REAL_COLOUR, None),
              ("validation_nll", "validation NLL", _GENERATED_COLOUR, "o"))
    drawn = False
    for key, label, colour, marker in curves:
        points = [(item["step"], item.get(key)) for item in history]
        points = [(step, value) for step, value in points
                  if value is not None and math.isfinite(value)]
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, label=label, color=colour, marker=marker, markersize=3)
            drawn = True
    if not drawn:
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no losses recorded", ha="center", va="center",
                  color="0.4", transform=axes.transAxes)
        return figure_png(figure)
    axes.set_xlabel("step")
    axes.set_ylabel("nats per event")
    axes.grid(True, color="0.9")
    axes.legend(frameon=False)
    return figure_png(figure)


def _histogram_pair(axes, real: np.ndarray, generated: np.ndarray, bins: int) -> None:
    """Real and generated density histograms on shared bins, overlaid."""
    pooled = np.concatenate([real, generated])
    if not len(pooled):
        axes.text(0.5, 0.5, "undefined", ha="center", va="center", color="0.4",
                  transform=axes.transAxes)
        axes.set_xticks([])
        return
    low, high = float(pooled.min()), float(pooled.max())
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    for values, colour in ((real, _REAL_COLOUR), (generated, _GENERATED_COLOUR)):
        if len(values):
            axes.hist(values, bins=edges, density=True, color=colour, alpha=0.45)
            axes.hist(values, bins=edges, density=True, color=colour, histtype="step")


def metric_histograms_png(real: Mapping[str, Sequence[float]],
                          generated: Mapping[str, Sequence[float]],
                          overlap: Mapping[str, float], columns: int = 4, bins: int = 20,
                          panel_px: tuple[int, int] = (300, 220)) -> bytes:
    """A grid of histograms, one per metric, real against generated, as PNG.

    Args:
      real, generated: Per-piece values by metric name (as
        `perfrnn.music_metrics.metric_values` returns); nan and None are skipped.
      overlap: Overlapping area by metric name, shown in each panel's title.
      columns: Panels per row.
      bins: Histogram bins, shared by both sets within a panel.
      panel_px: Width and height of one panel in pixels.
    """
    from matplotlib.patches import Patch

    names = list(real) + [name for name in generated if name not in real]
    columns = max(1, min(columns, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure = _new_figure(panel_px[0] * columns, panel_px[1] * rows + 30)
    if not names:
        axes = figure.add_subplot()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no metrics", ha="center", va="center", color="0.4",
                  transform=axes.transAxes)
        return figure_png(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat[len(names):]:
        axes.set_axis_off()
    for axes, name in zip(grid.flat, names):
        _histogram_pair(axes, _finite(real.get(name, [])), _finite(generated.get(name, [])), bins)
        area = overlap.get(name, math.nan)
        area_text = "n/a" if area is None or math.isnan(area) else f"{area:.2f}"
        axes.set_title(f"{name}\noverlap {area_text}", fontsize=9)
        axes.set_xlabel(METRICS.get(name, ""), fontsize=7)
        axes.tick_params(labelsize=7)
        axes.set_yticks([])
    figure.legend(handles=[Patch(color=_REAL_COLOUR, alpha=0.6, label="real"),
                           Patch(color=_GENERATED_COLOUR, alpha=0.6, label="generated")],
                  loc="outside upper right", ncols=2, frameon=False, fontsize=8)
    return figure_png(figure)


def ioi_histogram_png(real_density: Sequence[float], generated_density: Sequence[float],
                      bin_edges: Sequence[float], overlap: float | None = None,
                      width_px: int = 600, height_px: int = 300) -> bytes:
    """Inter-onset-interval densities (as `perfrnn.music_metrics.ioi_histogram` returns), as PNG.

    Both densities share `bin_edges` (seconds); the last bin holds every longer
    interval. `overlap`, when given, goes in the title.
    """
    figure = _new_figure(width_px, height_px)
    axes = figure.add_subplot()
    edges = np.asarray(bin_edges, np.float64)
    for density, colour, label in ((real_density, _REAL_COLOUR, "real"),
                                   (generated_density, _GENERATED_COLOUR, "generated")):
        axes.stairs(np.asarray(density, np.float64), edges, color=colour, fill=True,
                    alpha=0.45, label=label)
    title = "Inter-onset intervals"
    if overlap is not None and not math.isnan(overlap):
        title += f" (overlap {overlap:.2f})"
    axes.set_title(title)
    axes.set_xlabel("seconds between onsets")
    axes.set_ylabel("density")
    axes.legend(frameon=False)
    return figure_png(figure)
