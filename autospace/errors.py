"""User-facing errors.

Everything a user can get wrong (a bad file, a bad path, a bad value) raises
`AutospaceError` with a message that says what was wrong and what would be
right. The CLI prints that message on one line and exits with status 2; any
other exception is a bug.
"""


class AutospaceError(ValueError):
    """Bad input from the user: the message names the problem and the fix."""


class DiskFullError(AutospaceError):
    """A write found no space left on its device (ENOSPC, or a quota: EDQUOT). The file being written is
    absent or the older whole version (atomic writes), so the run can continue once there is space."""
