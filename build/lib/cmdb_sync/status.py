"""The outcome of each delivery, as the journal stores it and the operator commands count it."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    # in the journal
    APPLIED = "applied"  # the projection changed
    STALE = "stale"  # older than the state held: no effect
    UNSUPPORTED = "unsupported"  # a kind or action this version does not project
    FAILED = "failed"  # could not be projected; ``error`` says why
    # answered, never stored
    DUPLICATE = "duplicate"  # this id was journaled before
    # counted by operator commands
    INVALID = "invalid"  # an archive line that could not be read
    EXPORTED = "exported"  # a journal row written by ``export``

    @property
    def acknowledged_as_accepted(self) -> bool:
        """202 rather than 200: journaled, but not projected."""
        return self in (Status.UNSUPPORTED, Status.FAILED)
