"""The error types of vfdepth_ros (no imports: every module, the CLI included, can use them).

The `vfdepth` command prints both as one line and exits 2."""


class UserError(RuntimeError):
    """A mistake the user can fix; printed as one line without a traceback."""


class ConversionError(ValueError):
    """A ROS message that cannot be converted (or an array that cannot become one); the one-line
    message names the field and what was wrong."""


class BagError(UserError):
    """A bag that cannot be read or written as asked (one-line message naming the file)."""
