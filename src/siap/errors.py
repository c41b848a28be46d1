"""Errors that a user can act on. The CLI prints ``str(error)`` as one line and exits non-zero."""

from __future__ import annotations


class SiapError(Exception):
    """Base of the errors siap reports to a user (one line: what, where, what was expected)."""

    exit_code = 1


class ConfigError(SiapError):
    """A configuration or scenario file is malformed. Message: ``FILE: FIELD: what was expected``."""

    exit_code = 2


class RunStopped(SiapError):
    """A run ended early (a signal, a lost server, an error) after keeping what it had.

    ``cause`` is what stopped it; ``partial`` what the run had made by then (e.g. a
    :class:`siap.coalition.CoalitionResult` over the updates done). The exit code follows the
    cause: 130 for SIGINT, 143 for SIGTERM, 1 otherwise.
    """

    def __init__(self, message: str, cause: BaseException | None = None, partial: object | None = None):
        super().__init__(message)
        self.cause, self.partial = cause, partial
        self.exit_code = 143 if isinstance(cause, Terminated) else 130 if isinstance(cause, KeyboardInterrupt) else 1

    def describe_cause(self) -> str:
        """The cause in a few words: 'SIGTERM', 'SIGINT', or 'an error (Type: message)'."""
        c = self.cause
        if isinstance(c, Terminated):
            return "SIGTERM"
        if isinstance(c, KeyboardInterrupt):
            return "SIGINT"
        if c is None:
            return "an error"
        text = " ".join(str(c).split())[:200]
        return f"an error ({type(c).__name__}: {text})" if text else f"an error ({type(c).__name__})"


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the CLI's SIGTERM handler: ends a run like Ctrl-C does."""


class InputError(SiapError):
    """An input data file cannot be read (missing, wrong format, missing column)."""

    exit_code = 2
