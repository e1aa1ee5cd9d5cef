"""The one exception type a user of perfrnn can hit."""


class PerfRNNError(Exception):
    """A problem the user can fix: the message says what went wrong and what to do."""
