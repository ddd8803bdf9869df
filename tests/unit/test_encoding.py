"""The encoder process hands over exactly what in-process encoding produces."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fraud.errors import FraudError
from fraud.events import Transaction, decode
from producers.dataset import RejectedRow
from producers.encoding import BackgroundEncoder, encode_chunks
from producers.sources import SyntheticSource
from tests.conftest import make_transaction


def test_background_encoder_matches_in_process_encoding() -> None:
    source = SyntheticSource(2500, users=10, seed=3)
    in_process = [m for chunk in encode_chunks(source, "s") for m in chunk.messages]
    with BackgroundEncoder(source, "s") as chunks:
        background = [m for chunk in chunks for m in chunk.messages]
    # Event times start at "now" when the source opens, so compare everything but those.
    strip = lambda records: [(k, decode(v, Transaction).model_copy(update={"event_time": None})) for k, v, _ in records]  # noqa: E731
    assert len(background) == 2500
    assert strip(background) == strip(in_process)


@dataclass(frozen=True)
class _MixedSource:
    def open(self) -> Iterator[Transaction | RejectedRow]:
        yield make_transaction(1)
        yield RejectedRow(1, "amount: bad")
        yield make_transaction(2)


def test_rejected_rows_travel_with_the_chunks() -> None:
    with BackgroundEncoder(_MixedSource(), "s") as chunks:
        collected = list(chunks)
    assert sum(len(c.messages) for c in collected) == 2
    assert [r.row for c in collected for r in c.rejected] == [1]


@dataclass(frozen=True)
class _BrokenSource:
    def open(self) -> Iterator[Transaction | RejectedRow]:
        yield make_transaction(1)
        raise OSError("disk on fire")


def test_a_failing_source_surfaces_as_an_error_not_a_hang() -> None:
    with pytest.raises(FraudError, match="disk on fire"), BackgroundEncoder(_BrokenSource(), "s") as chunks:
        list(chunks)
