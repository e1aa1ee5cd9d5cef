"""What `training.prepare` makes of a corpus: a record per source file, the
totals per split, and the result that becomes `manifest.json` and `report.md`.

Its own module, so that the report (`training.report`) reads these records
without importing the step that writes them. Times are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets.manifest import SPLITS
from perfrnn.errors import PerfRNNError

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.md"
PREPARED_MANIFEST_FORMAT = "perfrnn-prepared-corpus"
MANIFEST_FORMAT_VERSION = 1


@dataclass
class FileRecord:
    """What became of one source file.

    Attributes:
      input: The --input argument the file was found under, as given.
      source: The file's path relative to that input (for a file given
        directly, its name; inside an archive, "archive.zip/inner/path").
      status: "used" or "skipped".
      split: "train" or "validation" for a used file, None for a skipped one.
      reason: Why the file was skipped (None when used).
      reason_code: One of the SKIP_* codes (None when used).
      warnings: Things worth knowing about a used file (e.g. a missing tempo).
      seconds: Length of the kept music in seconds.
      notes: Number of notes kept.
      events: Number of Performance events of the kept notes (no augmentation).
      dropped_notes: Notes of the other kind (drums for a pitched corpus,
        pitched notes for a drum corpus) that were left out.
      sha1: SHA-1 of the file's bytes (None for an archive that was refused).
      origin: Where the file came from, per the corpus manifest (e.g. "debian:mma").
      licence: The file's licence, per the corpus manifest.
      roles: For a band corpus, how many source parts went to each role.
      grid_fit: Share of drum hits (of onsets, without drums) on the 1/16 or
        triplet grid of the file's own tempo map (None when not measured).
      metre: The time signature a metric style reads the file in.
      chords: Where a metric band file's chords come from: "marked" (the
        file says, as mma renders and MusicXML do), "inferred"
        (`note_seq.chord_inference`), or None (trained without chords).
    """

    input: str
    source: str
    status: str = "used"
    split: str | None = None
    reason: str | None = None
    reason_code: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: int = 0
    events: int = 0
    dropped_notes: int = 0
    sha1: str | None = None
    origin: str | None = None
    licence: str | None = None
    roles: dict = field(default_factory=dict)
    grid_fit: float | None = None
    metre: str | None = None
    chords: str | None = None

    @property
    def used(self) -> bool:
        return self.status == "used"

    def skip(self, reason: str, code: str) -> FileRecord:
        """Marks the file skipped; returns self."""
        self.status, self.split = "skipped", None
        self.reason, self.reason_code = reason, code
        self.seconds, self.notes, self.events = 0.0, 0, 0
        return self

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "source": self.source,
            "status": self.status,
            "split": self.split,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "events": self.events,
            "dropped_notes": self.dropped_notes,
            "sha1": self.sha1,
            "origin": self.origin,
            "licence": self.licence,
            "roles": dict(self.roles),
            "grid_fit": None if self.grid_fit is None else round(self.grid_fit, 4),
            "metre": self.metre,
            "chords": self.chords,
        }


@dataclass
class SplitTotals:
    """Sums over the files of one split. Seconds of music, counts of notes and events."""

    files: int = 0
    seconds: float = 0.0
    notes: int = 0
    events: int = 0

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0

    def to_dict(self) -> dict:
        return {"files": self.files, "seconds": round(self.seconds, 3),
                "minutes": round(self.minutes, 3), "notes": self.notes, "events": self.events}


@dataclass
class PrepareResult:
    """The outcome of `prepare_corpus`: what was written where, and why."""

    name: str
    out_dir: Path
    config_id: str
    kind: str
    seed: int
    validation_fraction: float
    inputs: list[str]
    files: list[FileRecord]
    warnings: list[str] = field(default_factory=list)
    ignored_files: int = 0
    augmentation: dict = field(default_factory=dict)

    @property
    def used(self) -> list[FileRecord]:
        return [record for record in self.files if record.used]

    @property
    def skipped(self) -> list[FileRecord]:
        return [record for record in self.files if not record.used]

    @property
    def with_warnings(self) -> list[FileRecord]:
        return [record for record in self.files if record.used and record.warnings]

    @property
    def totals(self) -> dict[str, SplitTotals]:
        """Per split ("train", "validation"): files, seconds, notes, events."""
        totals = {split: SplitTotals() for split in SPLITS}
        for record in self.used:
            split_totals = totals[record.split]
            split_totals.files += 1
            split_totals.seconds += record.seconds
            split_totals.notes += record.notes
            split_totals.events += record.events
        return totals

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    def tfrecord_path(self, split: str) -> Path:
        return self.out_dir / f"{check_split(split)}.tfrecord"

    def to_manifest(self) -> dict:
        """The contents of manifest.json."""
        totals = {split: value.to_dict() for split, value in self.totals.items()}
        totals["skipped"] = {"files": len(self.skipped)}
        return {
            "format": PREPARED_MANIFEST_FORMAT,
            "format_version": MANIFEST_FORMAT_VERSION,
            "name": self.name,
            "config": self.config_id,
            "kind": self.kind,
            "seed": self.seed,
            "validation_fraction": self.validation_fraction,
            "inputs": list(self.inputs),
            "records": {split: f"{split}.tfrecord" for split in SPLITS},
            "augmentation": dict(self.augmentation),
            "totals": totals,
            "ignored_files": self.ignored_files,
            "warnings": list(self.warnings),
            "files": [record.to_dict() for record in self.files],
        }



def check_split(split: str) -> str:
    """`split` itself when it is "train" or "validation".

    Raises:
      PerfRNNError: any other split.
    """
    if split not in SPLITS:
        raise PerfRNNError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    return split
