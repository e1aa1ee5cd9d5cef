"""The one exception type a user of perfrnn can hit, and what it carries.

`str(error)` is one sentence for a terminal: what went wrong, the file it
is about and what to do, in the command line's words. A front end with its
own words (the website names an upload by the name it was sent with, and a
setting by its label on the page) reads the parts instead, through
`PerfRNNError.describe`; nothing is rewritten after the fact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike

PATH = "{path}"
"""Where a problem's text names its file; without it, the file goes before the text."""


@dataclass(frozen=True)
class Fix:
    """What to do, as a setting to change: `option` to `value`, for `purpose`
    ("to make a drum style from them"), or "" when the problem says why."""

    option: str
    value: str
    purpose: str = ""

    def command_line(self) -> str:
        """The fix in the command line's words: "..., use --kind drums"."""
        action = f"use --{self.option} {self.value}"
        return f"{self.purpose}, {action}" if self.purpose else action


class PerfRNNError(Exception):
    """A problem the user can fix.

    Attributes:
      problem: What went wrong (and what to do, in words that suit every
        front end), without the file; it may name the file as "{path}".
      path: The file or folder it is about, or None.
      action: What was being done with the file ("read", "load bundle"): the
        message then starts "cannot read FILE: ...".
      fix: A setting to change (`Fix`), or None.
    """

    def __init__(self, problem: str, *, path: str | PathLike | None = None,
                 action: str = "", fix: Fix | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.action = action
        self.fix = fix
        super().__init__(self.describe())

    def describe(self, path_name: str | None = None,
                 fix_words: Callable[[Fix], str] | None = None, lead: bool = True) -> str:
        """The message with the file called `path_name` (default its path) and
        the fix worded by `fix_words` (default `Fix.command_line`); without
        `lead`, a problem that does not name its file is said alone ("no
        such file" for a caller that names the file itself)."""
        text = self.problem
        if self.path is not None:
            where = self.path if path_name is None else path_name
            if PATH in text:
                text = text.replace(PATH, where)
            elif lead:
                lead = f"cannot {self.action} {where}" if self.action else where
                text = f"{lead}: {text}"
        if self.fix is not None:
            text = f"{text}; {(fix_words or Fix.command_line)(self.fix)}"
        return text
