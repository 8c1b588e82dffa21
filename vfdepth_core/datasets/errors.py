"""The datasets' error type (also importable from :mod:`vfdepth_core.datasets.common`)."""


class DatasetError(ValueError):
    """Broken or missing dataset files; the one-line message names the file and what is missing."""
