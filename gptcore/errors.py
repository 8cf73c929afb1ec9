"""The one exception type for mistakes a user can fix.

Entry points catch `UserError`, print its one-line message and exit non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class UserError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception in a few words for a one-line message: its first line (at most `limit` characters), or its
    type's name when it says nothing."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]


def write_error(path: Path | str, e: OSError, note: str = "") -> UserError:
    """The one-line error for a file that could not be written; a full disk (or quota) says so.

    `note` is said after the cause, e.g. what was kept.
    """
    note = f"; {note}" if note else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"the disk is full: cannot write {path} ({e.strerror}){note}: free some space or "
                         "choose another --out_dir")
    return UserError(f"cannot write {path} ({e.strerror or e}){note}: check that the folder is writable, or "
                     "choose another --out_dir")
