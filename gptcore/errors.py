"""The one exception type for mistakes a user can fix.

Entry points catch `UserError`, print its one-line message and exit non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""
