"""The kinds of training, in one table: what a corpus's files are prepared as
(`python -m training prepare --kind`, the train page's "kind").

- pitched: one instrument; drum notes dropped, pitched parts merged.
- drums: only the drum notes (MIDI channel 10).
- band: every part on its own track role (drums, bass, harmony, lead).

"auto" is the train page's choice to let the files (a dataset manifest) say.
Each kind's row holds what the train page calls it, what the page tells a
user choosing it, and what prepare's report.md says was done with the files.
The kinds themselves are `datasets.manifest.CORPUS_KINDS`; this module
imports nothing else, so the website reads it without loading training.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.manifest import CORPUS_KINDS

AUTO = "auto"


@dataclass(frozen=True)
class KindDescription:
    """How one kind of training is described to people."""

    label: str  # its name on the train page
    page_note: str  # what the train page says about it
    report_note: str  # what report.md says prepare did with the files ("" for auto)


KIND_DESCRIPTIONS: dict[str, KindDescription] = {
    AUTO: KindDescription(
        label="Auto",
        page_note="the default: one instrument (as below) unless the files come with a "
                  "dataset manifest that says otherwise",
        report_note=""),
    "pitched": KindDescription(
        label="One instrument",
        page_note="every pitched part merged into one performance, like a piano; drum notes "
                  "are dropped",
        report_note="pitched parts merged into one performance; drum notes (MIDI channel 10) "
                    "dropped"),
    "drums": KindDescription(
        label="Drums only",
        page_note="only the drum notes (MIDI channel 10) are kept, learnt on the beat: files "
                  "need a steady tempo",
        report_note="only drum notes (MIDI channel 10) kept"),
    "band": KindDescription(
        label="Band",
        page_note="each part on its own track: drums, bass, harmony and lead, learnt on the "
                  "beat: files need a steady tempo",
        report_note="every part mapped onto the roles drums, bass, harmony and lead"),
}

assert set(KIND_DESCRIPTIONS) == {AUTO, *CORPUS_KINDS}, "describe every corpus kind"
