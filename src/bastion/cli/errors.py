"""Turning what escapes an `anyio.run` into one exception a command can report."""

from __future__ import annotations


def sole_exception(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (how task groups re-raise)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
