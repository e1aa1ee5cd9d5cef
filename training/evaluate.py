"""How good is a trained style? (`python -m training evaluate`)

Two kinds of evidence, written to `RUN/evaluation/`:

1. **Held-out likelihood:** the mean negative log-likelihood, in nats per
   event, of the validation split's unaugmented windows (lower is better;
   ln(388) = 5.96 is a model that knows nothing).
2. **Objective metrics** (`perfrnn.music_metrics`, MusPy's definitions) of pieces
   the model generates against excerpts of the same length cut from held-out
   real music, and the overlapping area of the two distributions per metric
   (Yang & Lerch 2018; 1.0 = indistinguishable).

Files: `metrics.json` (all figures, read by `export` for the model card),
`report.md` with plots (`loss.png`, `metrics.png`, `ioi.png`, `pianoroll.png`)
and a few generated `samples/*.mid` to listen to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from perfrnn.errors import PerfRNNError
from perfrnn.scoring import excerpts

DEFAULT_SAMPLES = 20
DEFAULT_SECONDS = 30.0
DEFAULT_TEMPERATURE = 1.0
DEFAULT_SEED = 0
SAMPLE_FILES = 4
BATCH_VARIATIONS = 4

# progress(stage, done, total): stage is "validation", "generating" or "metrics".
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class EvaluationResult:
    """What `evaluate_run` measured; `to_json` is what metrics.json holds."""

    out_dir: Path
    step: int
    validation_nll_per_event: float | None
    mean_overlapping_area: float | None
    overlapping_area: dict[str, float]
    summary: dict
    real_pieces: int
    generated_pieces: int
    seconds: float
    temperature: float
    seed: int
    warnings: list[str] = field(default_factory=list)
    beat: dict = field(default_factory=dict)
    part_polyphony: dict = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "validation_nll_per_event": self.validation_nll_per_event,
            "mean_overlapping_area": self.mean_overlapping_area,
            "overlapping_area": self.overlapping_area,
            "metrics": self.summary,
            "real_pieces": self.real_pieces,
            "generated_pieces": self.generated_pieces,
            "seconds": self.seconds,
            "temperature": self.temperature,
            "seed": self.seed,
            "warnings": self.warnings,
            "beat": self.beat,
            "part_polyphony": self.part_polyphony,
        }


def beat_figures(real: list, generated: list) -> dict:
    """What a DAW shows, on each file's own tempo map (no best-fitting grid):
    the share of drum hits on the 1/16 or triplet grid, and the share of bars
    whose beat 1 carries the kick, for whole held-out pieces and generated
    pieces (means; None without drums)."""
    import numpy as np

    from perfrnn.metre import downbeat_share, onset_grid_fit

    def mean(values):
        values = [value for value in values if math.isfinite(value)]
        return float(np.mean(values)) if values else None

    figures = {}
    for name, measure in (("on_grid", lambda s: onset_grid_fit(s, drums_only=True)),
                          ("downbeat_kick", downbeat_share)):
        figures[name] = {"real": mean(map(measure, real)),
                         "generated": mean(map(measure, generated))}
    return figures


def part_polyphony(real: list, generated: list, tracks) -> dict:
    """For each pitched part of a band, the mean polyphony (pitches sounding at
    once, `perfrnn.music_metrics.polyphony`) of its notes alone, in real and in
    generated pieces: {part: {"real", "generated"}} (None where it never plays)."""
    import numpy as np
    from note_seq.protobuf import music_pb2

    from perfrnn.music_metrics import polyphony

    def mean(pieces, role):
        values = []
        for piece in pieces:
            part = music_pb2.NoteSequence()
            part.CopyFrom(piece)
            del part.notes[:]
            part.notes.extend(note for note in piece.notes if note.instrument == role)
            values.append(polyphony(part))
        values = [value for value in values if math.isfinite(value)]
        return float(np.mean(values)) if values else None

    if len(tracks) < 2:
        return {}
    return {track.name: {"real": mean(real, role), "generated": mean(generated, role)}
            for role, track in enumerate(tracks) if not track.is_drum}


def held_out_nll(run, sequences: list, style: str | None = None) -> float | None:
    """Validation NLL in nats per event of the run's model (None without data),
    playing `style` (a base's style; default the run's own)."""
    from training.export import run_style_mix
    from training.train import ExampleMaker, make_eval_step, validation_nll

    maker = ExampleMaker(run.config, int(run.settings.get("sequence_length", 512)))
    vector = None
    if run.config.has_style_input:
        vector = maker.encoding.style_vector(run_style_mix(run, style or run.style_name))
    windows = maker.validation_windows(sequences, style=vector)
    if not windows:
        return None
    return validation_nll(make_eval_step(run.model), windows,
                          int(run.settings.get("batch_size") or 16))


def evaluate_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    samples: int = DEFAULT_SAMPLES,
    seconds: float = DEFAULT_SECONDS,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = DEFAULT_SEED,
    progress: ProgressCallback | None = None,
    style: str | None = None,
) -> EvaluationResult:
    """Evaluates a training run; see the module docstring.

    Args:
      run_dir: A folder written by `training.train.train_model`.
      out_dir: Where to write (default RUN/evaluation); replaced files only.
      samples: Pieces to generate and real excerpts to compare with.
      seconds: Length of each piece and excerpt.
      temperature: Sampling temperature of the generated pieces.
      seed: Seed of the first generated batch (the next ones add 1, 2, ...).
      style: For a base model, the style to evaluate (its corpus, its style
        input); the report goes to RUN/evaluation/STYLE.

    Raises:
      PerfRNNError: bad arguments, or the run or its corpus cannot be read.
    """
    from perfrnn import music_metrics as objective
    from perfrnn.generate import midi_file_name
    from perfrnn.midi_writer import midi_bytes
    from perfrnn.options import GenerationOptions
    from perfrnn.pianoroll import pianoroll_png
    from perfrnn.sampler import Sampler
    from training import plots
    from training.export import bundle_from_run, evaluation_dir
    from training.prepare import read_prepared
    from training.runs import check_style, load_run
    from training.train import _write_json

    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise PerfRNNError(f"samples must be a whole number >= 1, got {samples!r}")
    GenerationOptions(seconds=seconds, temperature=temperature, seed=seed).validate()
    run = load_run(run_dir, style)
    if run.is_base:
        check_style(run.config, style, str(run.path))
    if run.data_dir is None or not run.data_dir.is_dir():
        raise PerfRNNError(f"the run's corpus {run.data_dir} is gone; evaluation compares "
                           "with its held-out music")
    out_dir = Path(out_dir) if out_dir is not None else evaluation_dir(run, style)
    warnings: list[str] = []

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    try:
        held_out = [s for s in read_prepared(run.data_dir, "validation") if s.notes]
    except PerfRNNError:
        held_out = []
    if not held_out:
        held_out = [s for s in read_prepared(run.data_dir, "train") if s.notes]
        warnings.append("the corpus has no validation split: generated music is compared "
                        "with training music and there is no held-out NLL")
        nll = None
    else:
        report("validation", 0, 1)
        nll = held_out_nll(run, held_out, style)
        report("validation", 1, 1)

    real = excerpts(held_out, seconds, samples)
    if len(real) < samples:
        warnings.append(f"only {len(real)} real {seconds:g}-second excerpts could be cut from "
                        f"the held-out music (asked for {samples})")

    bundle = bundle_from_run(run, style=style)
    sampler = Sampler(bundle)
    generated = []
    batch_seed = seed
    while len(generated) < samples:
        count = min(BATCH_VARIATIONS, samples - len(generated))
        report("generating", len(generated), samples)
        options = GenerationOptions(seconds=seconds, temperature=temperature,
                                    seed=batch_seed, variations=count)
        generated.extend(sampler.generate(options).sequences)
        batch_seed += 1
    report("generating", samples, samples)
    beat = beat_figures(held_out, generated)
    parts = part_polyphony(real, generated, bundle.metadata.tracks)

    report("metrics", 0, 1)
    # Beat-based metrics on each piece's own best-fitting grid, real and generated
    # alike: generated performances have no tempo to measure them against.
    real_values = objective.metric_values([objective.with_grid_tempo(x) for x in real])
    generated_values = objective.metric_values(
        [objective.with_grid_tempo(x) for x in generated])
    summary = objective.compare_metric_values(real_values, generated_values)
    overlaps = {name: item["overlapping_area"] for name, item in summary["metrics"].items()
                if item["overlapping_area"] is not None
                and math.isfinite(item["overlapping_area"])}
    mean_overlap = summary.get("mean_overlapping_area")
    if mean_overlap is not None and not math.isfinite(mean_overlap):
        mean_overlap = None
    report("metrics", 1, 1)

    out_dir.mkdir(parents=True, exist_ok=True)
    samples_dir = out_dir / "samples"
    samples_dir.mkdir(exist_ok=True)
    tracks = bundle.metadata.tracks
    for index, sequence in enumerate(generated[:SAMPLE_FILES]):
        name = midi_file_name(bundle.metadata.style,
                              GenerationOptions(seconds=seconds, variations=SAMPLE_FILES),
                              seed, index)
        metre = sampler.metre
        (samples_dir / name).write_bytes(midi_bytes(
            sequence, tracks, native_bpm=bundle.metadata.default_bpm,
            title=bundle.metadata.style, time_signature=(metre.numerator, metre.denominator)))
    (out_dir / "loss.png").write_bytes(plots.loss_curve_png(run.history))
    (out_dir / "metrics.png").write_bytes(
        plots.metric_histograms_png(real_values, generated_values, overlaps))
    real_ioi, edges = objective.ioi_histogram(real)
    generated_ioi, _ = objective.ioi_histogram(generated, bins=edges)
    (out_dir / "ioi.png").write_bytes(plots.ioi_histogram_png(
        real_ioi, generated_ioi, edges,
        overlap=overlaps.get("median_ioi_beats")))
    (out_dir / "pianoroll.png").write_bytes(pianoroll_png(
        generated[0], tracks, title=f"{bundle.metadata.style}: generated sample 1"))
    if real:
        (out_dir / "pianoroll_real.png").write_bytes(pianoroll_png(
            real[0], tracks if run.config.is_multitrack else None,
            title=f"{bundle.metadata.style}: held-out excerpt"))

    result = EvaluationResult(
        out_dir=out_dir, step=run.step, validation_nll_per_event=nll,
        mean_overlapping_area=mean_overlap, overlapping_area=overlaps,
        summary=summary["metrics"], real_pieces=len(real), generated_pieces=len(generated),
        seconds=float(seconds), temperature=float(temperature), seed=int(seed),
        warnings=warnings, beat=beat, part_polyphony=parts)
    _write_json(out_dir / "metrics.json", _plain(result.to_json()))
    result.report_path.write_text(render_evaluation_report(result, bundle.metadata.style, run),
                                  encoding="utf-8")
    return result


def _plain(value):
    """JSON-ready data: numpy numbers to Python ones, nan and infinities to None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _format(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def render_evaluation_report(result: EvaluationResult, style: str, run) -> str:
    """report.md: the figures, the plots and the samples."""
    from perfrnn.music_metrics import METRICS

    lines = [
        f"# Evaluation: {style}",
        "",
        f"- Run: `{run.path}` at step {result.step:,} (checkpoint `{Path(run.checkpoint).name}`)",
        f"- Held-out NLL: **{_format(result.validation_nll_per_event)} nats per event**",
        f"- Mean overlapping area, generated vs held-out: "
        f"**{_format(result.mean_overlapping_area, 2)}** (1.0 = same distributions)",
        f"- {result.generated_pieces} generated pieces of {result.seconds:g} s at temperature "
        f"{result.temperature:g} (seeds from {result.seed}) against {result.real_pieces} "
        f"held-out excerpts of the same length",
        "- Beat-based metrics (empty beats, groove and drum-pattern consistency, inter-onset "
        "intervals in beats) are measured on each piece's best-fitting sixteenth or triplet "
        "grid (60-200 BPM), real and generated alike: generated music has no tempo of its own",
        "",
    ]
    lines += [f"> warning: {warning}" for warning in result.warnings]
    if result.beat:
        lines += ["", "## On the beat (each file's own tempo map, as a DAW draws it)", "",
                  "| figure | real (whole held-out pieces) | generated |", "|---|---:|---:|"]
        labels = {"on_grid": "drum hits within 1/24 beat of the 1/16 or triplet grid",
                  "downbeat_kick": "bars whose beat 1 carries the kick"}
        for name, item in result.beat.items():
            lines.append(f"| {labels.get(name, name)} | {_format(item.get('real'), 2)} | "
                         f"{_format(item.get('generated'), 2)} |")
    if result.part_polyphony:
        lines += ["", "## Polyphony of each part (pitches sounding at once)", "",
                  "| part | real | generated |", "|---|---:|---:|"]
        for name, item in result.part_polyphony.items():
            lines.append(f"| {name} | {_format(item.get('real'), 2)} | "
                         f"{_format(item.get('generated'), 2)} |")
    lines += ["", "## Objective metrics", "",
              "| metric | unit | real mean ± sd | generated mean ± sd | overlap |",
              "|---|---|---|---|---:|"]
    for name, item in result.summary.items():
        lines.append(
            f"| {name} | {METRICS.get(name, '')} | {_format(item['real_mean'], 2)} ± "
            f"{_format(item['real_std'], 2)} | {_format(item['generated_mean'], 2)} ± "
            f"{_format(item['generated_std'], 2)} | {_format(item['overlapping_area'], 2)} |")
    lines += [
        "", "![metric histograms](metrics.png)", "",
        "## Inter-onset intervals", "", "![inter-onset intervals](ioi.png)", "",
        "## Training loss", "", "![loss curve](loss.png)", "",
        "## A generated piece", "", "![piano roll of a generated piece](pianoroll.png)", "",
    ]
    if result.real_pieces:
        lines += ["## A held-out excerpt", "", "![piano roll of real music](pianoroll_real.png)",
                  ""]
    lines += ["Listen: the first generated pieces are in `samples/`.", ""]
    return "\n".join(lines)
