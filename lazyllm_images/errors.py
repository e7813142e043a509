"""One exception hierarchy. The CLI prints ``error: ...`` and ``hint: ...`` and exits with ``exit_code``."""

from __future__ import annotations


class LazyllmError(Exception):
    """A failure the user can act on. ``hint`` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LazyllmError):
    """Bad command-line input (exit 2)."""

    exit_code = 2


class NotImplementedYet(UsageError):
    """A command of the seed whose behaviour lands later: never a fake success."""

    def __init__(self, what: str):
        super().__init__(f"{what} is not implemented yet",
                         "see README.md ('Limits') for what works today")


class EngineError(LazyllmError):
    """The Docker engine is unreachable or refused a call."""


class PlanError(UsageError):
    """The request cannot be resolved into a plan (conflicts, unknown names)."""


class BuildError(LazyllmError):
    """A layer failed to build, or a check after the build failed."""


class LaunchError(LazyllmError):
    """A container did not start or never became healthy."""
