"""Human-readable views of a PrepareResult: the stdout summary and report.md."""

from __future__ import annotations

from training.kinds import KIND_DESCRIPTIONS
from training.prepared import FileRecord, PrepareResult


def format_summary(result: PrepareResult) -> str:
    """The table printed after `prepare`: files, minutes and events per split."""
    totals = result.totals
    lines = [
        f"Prepared corpus {result.name!r} ({result.config_id}, {result.kind}) "
        f"in {result.out_dir}",
        "",
        f"{'split':<12}{'files':>8}{'minutes':>10}{'events':>12}",
    ]
    for split, split_totals in totals.items():
        lines.append(f"{split:<12}{split_totals.files:>8,}{split_totals.minutes:>10.2f}"
                     f"{split_totals.events:>12,}")
    lines.append("")
    skipped = len(result.skipped)
    warned = len(result.with_warnings)
    lines.append(f"{skipped} file{'s' if skipped != 1 else ''} skipped, {warned} with warnings; "
                 f"details in {result.report_path}")
    lines.extend(f"warning: {warning}" for warning in result.warnings)
    return "\n".join(lines)


def render_prepare_report(result: PrepareResult) -> str:
    """report.md: summary table, run warnings, skipped files, files with warnings, all files."""
    totals = result.totals
    low, high = result.augmentation.get("transpose_semitones", [0, 0])
    stretch = result.augmentation.get("stretch_factors", [1.0])
    lines = [
        f"# Prepared corpus: {result.name}",
        "",
        f"- Model configuration: `{result.config_id}`",
        f"- Kind: {result.kind} ({KIND_DESCRIPTIONS[result.kind].report_note})",
        f"- Inputs: {', '.join(f'`{item}`' for item in result.inputs)}",
        f"- Split: by source file, validation fraction {result.validation_fraction:g}, "
        f"seed {result.seed}",
        f"- Augmentation at training time (not stored): transpose {low:+d} to {high:+d} "
        f"semitones, time stretch x{min(stretch):g} to x{max(stretch):g}",
        "",
        "## Summary",
        "",
        "| split | files | minutes | notes | events |",
        "|---|---:|---:|---:|---:|",
    ]
    for split, split_totals in totals.items():
        lines.append(f"| {split} | {split_totals.files:,} | {split_totals.minutes:.2f} | "
                     f"{split_totals.notes:,} | {split_totals.events:,} |")
    lines.append(f"| skipped | {len(result.skipped):,} | | | |")
    if result.ignored_files:
        lines += ["", f"{result.ignored_files:,} files that are not music "
                      "(other suffixes) were ignored."]

    if result.warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- {_text(warning)}" for warning in result.warnings]

    skipped = result.skipped
    lines += ["", f"## Skipped files ({len(skipped)})", ""]
    if skipped:
        lines += ["| file | reason |", "|---|---|"]
        lines += [f"| {_cell(_where(record, result))} | {_cell(record.reason or '')} |"
                  for record in skipped]
    else:
        lines.append("None.")

    warned = result.with_warnings
    lines += ["", f"## Files with warnings ({len(warned)})", ""]
    if warned:
        lines += ["| file | split | warnings |", "|---|---|---|"]
        lines += [f"| {_cell(_where(record, result))} | {record.split} | "
                  f"{_cell('; '.join(record.warnings))} |" for record in warned]
    else:
        lines.append("None.")

    used = result.used
    lines += ["", f"## Files used ({len(used)})", ""]
    if any(record.grid_fit is not None for record in used):
        # Metric styles: how well each file's onsets fit the grid of its own tempo map.
        lines += ["| file | split | seconds | notes | events | metre | on the grid |",
                  "|---|---|---:|---:|---:|---|---:|"]
        lines += [f"| {_cell(_where(record, result))} | {record.split} | {record.seconds:.1f} | "
                  f"{record.notes:,} | {record.events:,} | {record.metre} | "
                  f"{record.grid_fit:.0%} |" for record in used]
    else:
        lines += ["| file | split | seconds | notes | events |", "|---|---|---:|---:|---:|"]
        lines += [f"| {_cell(_where(record, result))} | {record.split} | "
                  f"{record.seconds:.1f} | {record.notes:,} | {record.events:,} |"
                  for record in used]
    return "\n".join(lines) + "\n"


def _where(record: FileRecord, result: PrepareResult) -> str:
    """A file's source path, preceded by its input when there are several inputs."""
    if len(result.inputs) > 1:
        return f"{record.input}: {record.source}"
    return record.source


def _text(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no line breaks, pipes or HTML tags."""
    return _text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "|", "\\|")
