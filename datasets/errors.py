"""The one exception type the dataset tools raise for problems a user can fix."""

from __future__ import annotations

from perfrnn.errors import PerfRNNError


class DatasetError(PerfRNNError):
    """A problem the user can fix; the message says what went wrong and what to do."""


class SkipPiece(Exception):  # noqa: N818 - a signal, not an error
    """A source piece that yields no usable file (no notes of the kind wanted, say).

    Raised inside a piece's maker; the builder records ``str(exc)`` as the reason
    and goes on with the next piece.
    """
