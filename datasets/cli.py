"""Command line: ``python -m datasets build|fetch|list``.

Errors a user can fix print one ``error: ...`` line and exit with status 2;
Ctrl-C exits with 130. Progress bars go to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from datasets.errors import DatasetError
from datasets.licences import licence_meaning
from datasets.manifest import totals
from datasets.system import DEFAULT_CACHE, INSTALL_SCRIPT

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXAMPLES = """examples:
  python -m datasets list
  python -m datasets build drums --out corpora/drums
  python -m datasets build rock --out corpora/rock --limit 20 --seed 3
  python -m datasets build piano --sources music21
  python -m datasets fetch maestro --out corpora/maestro
  python -m datasets fetch lakh --out corpora/lakh-rock --genre Rock

Corpora are built, never committed: each corpus folder carries a .gitignore.
Debian packages the builders read: see datasets/install_system_packages.sh.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like the other errors
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m datasets``."""
    from datasets.online import ONLINE
    from datasets.styles import STYLES

    parser = _Parser(
        prog="python -m datasets",
        description="Build style corpora offline from registry packages, or fetch public "
        "MIDI datasets; both write manifest.json for `python -m training prepare`.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    build = commands.add_parser(
        "build", help=f"build a style corpus offline ({', '.join(STYLES)})",
        description="Build a style corpus from Debian and PyPI packages.",
    )
    build.add_argument("style", choices=sorted(STYLES), help="the style to build")
    build.add_argument("--out", type=Path, help="corpus folder (default: corpora/STYLE)")
    build.add_argument("--limit", type=_positive, help="at most N source pieces (quick runs)")
    build.add_argument("--seed", type=int, default=0, help="seed of renders and split (0)")
    build.add_argument("--validation-fraction", type=_fraction, default=0.1,
                       help="share of files in held-out families, 0 <= F < 1 (0.1)")
    build.add_argument("--takes", type=_positive,
                       help="renders per mma groove (default per style: " + ", ".join(
                           f"{style.name} {style.takes}" for style in STYLES.values()
                           if any(source.name == "mma" for source in style.sources)) + ")")
    build.add_argument("--sources", help="comma-separated subset of the style's sources "
                       "(see `list`)")
    build.add_argument("--jobs", type=_positive, help="worker processes (default: CPU count)")
    build.add_argument("--cache", type=Path, help=f"download cache (default {DEFAULT_CACHE})")

    fetch = commands.add_parser(
        "fetch", help="download a public dataset (maestro, groove, lakh)",
        description="Download (with resume), verify, unpack and index a public MIDI dataset.",
    )
    fetch.add_argument("dataset", choices=sorted(ONLINE), help="the dataset to fetch")
    fetch.add_argument("--out", type=Path, help="corpus folder (default: corpora/DATASET)")
    fetch.add_argument("--url", help="archive URL (default: the dataset's official one)")
    fetch.add_argument("--sha256", help="expected SHA-256 of the archive")
    fetch.add_argument("--seed", type=int, default=0, help="seed of the split where the "
                       "dataset has none (lakh)")
    fetch.add_argument("--validation-fraction", type=_fraction, default=0.1,
                       help="share held out where the dataset has no split column (0.1)")
    fetch.add_argument("--genre", help="lakh: keep only this tagtraum genre (e.g. Rock)")
    fetch.add_argument("--no-genres", action="store_true",
                       help="lakh: skip the genre labels (two more downloads)")
    fetch.add_argument("--match-url", help="lakh: URL of match_scores.json")
    fetch.add_argument("--genres-url", help="lakh: URL of the tagtraum genre file")
    fetch.add_argument("--cache", type=Path, help=f"download cache (default {DEFAULT_CACHE})")

    commands.add_parser("list", help="list styles, sources and datasets with their licences",
                        description="List what can be built or fetched, and the licences.")
    return parser


def _print_totals(name: str, out: Path, files, seconds: float, skipped: int = 0) -> None:
    table = totals(files)
    print(f"{name}: wrote {out} in {seconds:.0f} s")
    for split, row in table.items():
        print(f"  {split:<11} {row['files']:>6} files {row['minutes']:>8.1f} minutes")
    if skipped:
        print(f"  skipped     {skipped:>6} pieces (reasons in manifest.json)")


def _run_build(args: argparse.Namespace) -> int:
    from datasets.build import build_corpus, select_pieces
    from datasets.styles import get_style, plan_style
    from datasets.system import cache_dir

    style = get_style(args.style)
    chosen = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None
    out = args.out or Path("corpora") / style.name
    pieces = plan_style(style, chosen, args.takes, args.seed, cache_dir(args.cache))
    pieces = select_pieces(pieces, args.limit, args.seed)
    result = build_corpus(
        style.name, pieces, out, builder=f"datasets build {style.name}",
        description=style.description, seed=args.seed,
        validation_fraction=args.validation_fraction, jobs=args.jobs,
    )
    _print_totals(style.name, result.out, result.files, result.seconds_taken, len(result.skipped))
    return EXIT_OK


def _run_fetch(args: argparse.Namespace) -> int:
    from datasets.online import FetchOptions, fetch

    options = FetchOptions(
        seed=args.seed, validation_fraction=args.validation_fraction, genre=args.genre,
        match_url=args.match_url, genres_url=args.genres_url, genres=not args.no_genres,
        cache=args.cache,
    )
    out = args.out or Path("corpora") / args.dataset
    folder, files, seconds = fetch(args.dataset, out, url=args.url, sha256=args.sha256,
                                   options=options)
    _print_totals(args.dataset, folder, files, seconds)
    return EXIT_OK


def _run_list() -> int:
    from datasets.online import ONLINE
    from datasets.styles import STYLES

    print("Offline styles (python -m datasets build STYLE):")
    for style in STYLES.values():
        print(f"\n  {style.name} ({style.kind}): {style.description}")
        for source in style.sources:
            print(f"    - {source.name}: {source.description} [{source.licence}]")
    print("\nOnline datasets (python -m datasets fetch NAME):")
    for dataset in ONLINE.values():
        print(f"\n  {dataset.name} ({dataset.kind}): {dataset.title} [{dataset.licence}]")
        print(f"    {dataset.url}")
    print("\nLicences:")
    seen = []
    for style in STYLES.values():
        for source in style.sources:
            seen += [part.strip() for part in source.licence.split(",")]
    seen += [d.licence for d in ONLINE.values()]
    for licence in dict.fromkeys(seen):
        print(f"  {licence}: {licence_meaning(licence)}")
    print(f"\nDebian packages needed offline: sudo bash {INSTALL_SCRIPT}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line and returns the exit status (0, 2 for user errors, 130)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return, do not exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "build":
            return _run_build(args)
        if args.command == "fetch":
            return _run_fetch(args)
        return _run_list()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
