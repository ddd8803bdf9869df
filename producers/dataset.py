"""Replay transactions from a dataset file: Parquet (file or dataset folder), CSV or JSON Lines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pydantic import ValidationError

from fraud.errors import FraudError
from fraud.events import Transaction, describe_validation_error

_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json", ".ndjson": "json"}
_FIELDS = list(Transaction.model_fields)


@dataclass(frozen=True)
class RejectedRow:
    """A dataset row that is not a valid transaction, with its 0-based row number and the reason."""

    row: int
    reason: str


def _open(path: Path) -> ds.Dataset:
    if not path.exists():
        raise FraudError(f"dataset {path} does not exist")
    suffix = path.suffix.lower() if path.is_file() else ".parquet"  # a folder is a parquet dataset
    if suffix not in _FORMATS:
        raise FraudError(f"dataset {path}: unknown format {suffix!r}; use .parquet, .csv or .jsonl")
    dataset = ds.dataset(path, format=_FORMATS[suffix])
    missing = [name for name in _FIELDS if name not in dataset.schema.names]
    if missing:
        raise FraudError(f"dataset {path} lacks column(s): {', '.join(missing)}")
    return dataset


def _utc(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Read naive timestamps as UTC, the convention of every dataset this product writes."""
    column = batch.column("event_time")
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
        batch = batch.set_column(batch.schema.get_field_index("event_time"), "event_time", column)
    return batch


def read_transactions(path: Path, limit: int | None = None) -> Iterator[Transaction | RejectedRow]:
    """Yield each row as a Transaction, or a RejectedRow saying why it is not one."""
    dataset = _open(path)
    row_number = 0
    for batch in dataset.to_batches(columns=_FIELDS, batch_size=8192):
        for row in _utc(batch).to_pylist():
            if limit is not None and row_number >= limit:
                return
            try:
                yield Transaction.model_validate(row)
            except ValidationError as error:
                yield RejectedRow(row_number, describe_validation_error(error))
            row_number += 1
