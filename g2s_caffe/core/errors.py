"""One exception type for problems the user can fix; the CLI prints it without a traceback."""


class G2SError(Exception):
    """A user-facing error.  The message names the file/line/image and says what to do."""
