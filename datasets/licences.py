"""Licence identifiers (SPDX where one exists) and what each means for a user."""

from __future__ import annotations

LICENCE_MEANINGS: dict[str, str] = {
    "GPL-2.0-or-later": (
        "Free to use, change and share, but anything you redistribute that contains these "
        "files must itself be offered under the GPL (version 2 or later) with its source."
    ),
    "GPL-3.0-or-later": (
        "Free to use, change and share, but anything you redistribute that contains these "
        "files must itself be offered under the GPL (version 3 or later) with its source."
    ),
    "BSD-3-Clause": (
        "Free to use, change and share, also commercially, if you keep the copyright notice "
        "and do not use the authors' names to promote your product."
    ),
    "BSD-2-Clause": (
        "Free to use, change and share, also commercially, if you keep the copyright notice."
    ),
    "Artistic-2.0": (
        "Free to use and share, also commercially; changed versions must be marked as changed "
        "and may not be passed off as the original."
    ),
    "CC-BY-SA-3.0": (
        "Free to use and share, also commercially, if you credit the author and share "
        "adapted material under the same licence."
    ),
    "CC-BY-SA-4.0": (
        "Free to use and share, also commercially, if you credit the author and share "
        "adapted material under the same licence."
    ),
    "CC-BY-4.0": (
        "Free to use and share, also commercially, if you credit the dataset's authors."
    ),
    "CC-BY-NC-SA-4.0": (
        "Non-commercial use only, with credit, and adaptations shared under the same "
        "licence: never commit, ship or sell these files or material made from them."
    ),
    "music21-corpus": (
        "Public-domain compositions in encodings shipped with music21 for study; some "
        "encodings forbid commercial use, so check music21/corpus/license.txt and the work "
        "before you redistribute anything."
    ),
    "Lakh-MIDI": (
        "The dataset is CC-BY-4.0 (credit Colin Raffel's Lakh MIDI Dataset), but most songs "
        "in it are still under copyright: use it for research and do not redistribute it."
    ),
}


def licence_meaning(licence: str) -> str:
    """One sentence saying what ``licence`` means for a user (a generic line if unknown)."""
    return LICENCE_MEANINGS.get(
        licence, "See the licence text of the source before you redistribute these files."
    )
