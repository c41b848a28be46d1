"""Errors that a user can act on. The CLI prints ``str(error)`` as one line and exits non-zero."""

from __future__ import annotations


class SiapError(Exception):
    """Base of the errors siap reports to a user (one line: what, where, what was expected)."""

    exit_code = 1


class ConfigError(SiapError):
    """A configuration or scenario file is malformed. Message: ``FILE: FIELD: what was expected``."""

    exit_code = 2


class InputError(SiapError):
    """An input data file cannot be read (missing, wrong format, missing column)."""

    exit_code = 2
