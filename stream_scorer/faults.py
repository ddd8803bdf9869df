"""The two kinds of trouble a batch can meet, which the failure contract treats differently.

- `TransientFault`: something outside the record is unavailable (the broker, the
  predictor's transport or a 5xx, the Feast store). It heals by itself: the
  worker pauses consumption and retries the same work with backoff. Nothing is
  dead-lettered for it and no offset moves past it.
- `RowsRefused`: the predictor answered 4xx for some rows. That is the record's
  fault, not an outage: those rows are dead-lettered with the predictor's message
  and the rest of the batch is scored.
Anything else raised while scoring is a fault of the code meeting this record;
the agent isolates the record and dead-letters it with the exception.
"""

from __future__ import annotations


class TransientFault(Exception):
    """A dependency is unavailable for now; ``dependency`` names it (predictor, feast, kafka)."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency}: {message}")
        self.dependency = dependency


class RowsRefused(Exception):
    """The predictor refused these rows of a request (by index) with these messages."""

    def __init__(self, reasons: dict[int, str]) -> None:
        super().__init__(f"{len(reasons)} rows refused: {next(iter(reasons.values()), '')}")
        self.reasons = reasons
