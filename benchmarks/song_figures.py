"""Song structure figures: generated pieces against real held-out music of each style.

    .venv/bin/python benchmarks/song_figures.py \\
        --real /work/corpora/rock /work/corpora/electronic /work/corpora/drums \\
        --real-pieces 20 --bundle bundles/rock.mag bundles/electronic.mag \\
        bundles/drums.mag --pieces 8 --seconds 30 --out /tmp/song_figures.json

For each **bundle** it generates --pieces pieces of --seconds with the
style's default settings (seeds 0, 1, ...; one sampling batch through
`perfrnn.generate.generate_midi_batch`, the path the CLI and the website
take), writes them as the MIDI files a user downloads, and reads them back
with `perfrnn.music_io.read_music_file`, as a DAW would: on the files' own
tempo map and time signature, with their chord symbols and section markers
if any.

For each **real** corpus folder (one `python -m datasets build STYLE` made) it
reads the files of the manifest's validation split (held out from training):
--real-pieces of them, evenly spaced through the sorted list so that every
source takes part. A folder without manifest.json counts all its MIDI files.

Every piece is measured by `perfrnn.song_metrics.song_figures` (parts mapped
onto drums, bass, harmony and lead; see that module for each figure's
definition and unit), and the figures averaged over the pieces they apply to.
Onsets are read at the nearest 1/12 beat; with --onset-grid they are first
moved to the nearest sixteenth or eighth triplet, as the metric styles'
encoding reads real music: that takes out the humanised timing of rendered
corpora (mma's), which otherwise keeps a repeated bar from matching exactly.
Generated pieces of metric styles are on that grid already.
It prints a markdown table, one row per figure and two columns per style
(generated, real); a cell shows "(n/N)" when only n of the N pieces had the
figure, and "-" when none had. --out writes the same, with every piece's
figures, as JSON.

Prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MANIFEST = "manifest.json"
MIDI_SUFFIXES = (".mid", ".midi")
COUNT_FIGURES = ("drum_notes_per_bar", "kicks_per_bar", "pitch_range")
"""Figures that are counts, printed with one decimal (the rest are shares, with three)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", nargs="+", default=[], type=Path,
                        help="style bundles (.mag) to generate from")
    parser.add_argument("--pieces", type=int, default=8,
                        help="pieces generated per bundle (default: 8)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each generated piece in seconds (default: 30)")
    parser.add_argument("--real", nargs="+", default=[], type=Path,
                        help="corpus folders built by `python -m datasets build`")
    parser.add_argument("--real-pieces", type=int, default=20,
                        help="held-out files measured per corpus (default: 20; 0 for all)")
    parser.add_argument("--real-seconds", type=float, default=None,
                        help="measure only the first seconds of each real file "
                             "(default: the whole file)")
    parser.add_argument("--onset-grid", action="store_true",
                        help="move onsets to the nearest sixteenth or eighth triplet first")
    parser.add_argument("--no-inferred", action="store_true",
                        help="skip the figures against inferred chords (the slowest part)")
    parser.add_argument("--midi-out", type=Path, default=None,
                        help="keep the generated MIDI files in this folder (default: a "
                             "temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    if not args.bundle and not args.real:
        parser.error("give --bundle or --real (or both)")
    if args.pieces < 1 or args.real_pieces < 0 or args.seconds <= 0:
        parser.error("--pieces and --seconds must be positive, --real-pieces at least 0")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def held_out_files(folder: Path, limit: int) -> tuple[str, list[Path]]:
    """(style name, the held-out MIDI files to measure) of a corpus folder."""
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        name = manifest.get("name") or folder.name
        files = sorted(folder / entry["file"] for entry in manifest["files"]
                       if entry.get("split") == "validation"
                       and entry["file"].lower().endswith(MIDI_SUFFIXES))
    else:
        name = folder.name
        files = sorted(path for path in folder.rglob("*")
                       if path.suffix.lower() in MIDI_SUFFIXES)
    if limit and len(files) > limit:  # evenly spaced: every source takes part
        files = [files[index * len(files) // limit] for index in range(limit)]
    return name, files


def cut(sequence, seconds: float | None):
    """The notes of `sequence` that start before `seconds` (all for None)."""
    if seconds is None:
        return sequence
    from note_seq import sequences_lib

    return sequences_lib.trim_note_sequence(sequence, 0.0, seconds)


def measure(paths: list[Path], args: argparse.Namespace, seconds: float | None = None
            ) -> tuple[list[dict], list[str]]:
    """Each readable file's figures ({"file": path, figure: value}) and why
    others were left out."""
    from perfrnn.errors import PerfRNNError
    from perfrnn.music_io import read_music_file
    from perfrnn.song_metrics import song_figures

    pieces, skipped = [], []
    for path in paths:
        try:
            sequence = read_music_file(path)
        except PerfRNNError as error:
            skipped.append(f"{path}: {error}")
            continue
        figures = song_figures(cut(sequence, seconds), infer_chords=not args.no_inferred,
                               onset_grid=args.onset_grid)
        pieces.append({"file": str(path), **figures})
    return pieces, skipped


def generate(bundle_path: Path, pieces: int, seconds: float, folder: Path
             ) -> tuple[str, list[Path]]:
    """(style, MIDI files of `pieces` default pieces of `seconds`, seeds 0..)."""
    from perfrnn.bundle import read_bundle
    from perfrnn.errors import PerfRNNError
    from perfrnn.generate import MidiRequest, generate_midi_batch, write_files
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler

    bundle = read_bundle(bundle_path)
    sampler = Sampler(bundle)
    requests = [MidiRequest(GenerationOptions(seconds=seconds, seed=seed))
                for seed in range(pieces)]
    files: list[tuple[str, bytes]] = []
    for _, outcome in generate_midi_batch(sampler, requests):
        if isinstance(outcome, PerfRNNError):
            raise outcome
        files.extend(outcome.files)
    style = bundle.metadata.style
    return style, write_files(sorted(files), folder / style)


def cell(summary: dict, total: int, name: str) -> str:
    mean, count = summary["mean"], summary["pieces"]
    if mean is None:
        return "-"
    text = f"{mean:.1f}" if name in COUNT_FIGURES else f"{mean:.3f}"
    return text if count == total else f"{text} ({count}/{total})"


def table(columns: list[dict]) -> str:
    """The markdown table: a row per figure, a column per style and source."""
    from perfrnn.song_metrics import FIGURES

    lines = ["| figure | " + " | ".join(f"{c['style']} {c['source']}" for c in columns) + " |",
             "|---|" + "---:|" * len(columns),
             "| pieces | " + " | ".join(str(len(c["per_piece"])) for c in columns) + " |"]
    for name in FIGURES:
        lines.append(f"| {name} | " + " | ".join(
            cell(c["figures"][name], len(c["per_piece"]), name) for c in columns) + " |")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    from perfrnn.console import import_libraries_quietly

    import_libraries_quietly()
    from perfrnn.song_metrics import FIGURES, mean_figures

    columns = []
    with tempfile.TemporaryDirectory(prefix="song-figures-") as temporary:
        midi_folder = args.midi_out or Path(temporary)
        for bundle_path in args.bundle:
            started = time.perf_counter()
            progress(f"{bundle_path}: generating {args.pieces} pieces of {args.seconds:g} s")
            style, paths = generate(bundle_path, args.pieces, args.seconds, midi_folder)
            took = time.perf_counter() - started
            pieces, skipped = measure(paths, args)
            progress(f"{style} generated: {len(pieces)} pieces measured "
                     f"({took:.0f} s to generate, {time.perf_counter() - started - took:.0f} s "
                     "to measure)")
            columns.append({"style": style, "source": "generated", "path": str(bundle_path),
                            "per_piece": pieces, "skipped": skipped})
    for folder in args.real:
        started = time.perf_counter()
        style, paths = held_out_files(folder, args.real_pieces)
        progress(f"{folder}: measuring {len(paths)} held-out files")
        pieces, skipped = measure(paths, args, args.real_seconds)
        progress(f"{style} real: {len(pieces)} pieces measured, {len(skipped)} unreadable "
                 f"({time.perf_counter() - started:.0f} s)")
        columns.append({"style": style, "source": "real", "path": str(folder),
                        "per_piece": pieces, "skipped": skipped})

    order = list(dict.fromkeys(column["style"] for column in columns))
    columns.sort(key=lambda c: (order.index(c["style"]), c["source"] != "generated"))
    for column in columns:
        column["figures"] = mean_figures(column["per_piece"])
    print(table(columns))
    grid = ("moved to the nearest sixteenth or eighth triplet" if args.onset_grid
            else "read at the nearest 1/12 beat")
    print(f"\nonsets {grid}; generated: {args.pieces} pieces of {args.seconds:g} s per bundle; "
          f"real: {args.real_pieces or 'all'} held-out files per corpus"
          + (f", their first {args.real_seconds:g} s" if args.real_seconds else ""), flush=True)
    if args.out:
        settings = {key: str(value) if isinstance(value, Path) else value
                    for key, value in vars(args).items()}
        settings["bundle"] = [str(path) for path in args.bundle]
        settings["real"] = [str(path) for path in args.real]
        args.out.write_text(json.dumps({"settings": settings, "units": FIGURES,
                                        "columns": columns}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
