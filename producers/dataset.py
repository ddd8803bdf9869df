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


def open_dataset(path: Path, required: list[str]) -> ds.Dataset:
    """The file (or Parquet folder) as a pyarrow dataset; a one-line error if it is missing, unknown or lacks a column."""
    if not path.exists():
        raise FraudError(f"dataset {path} does not exist")
    suffix = path.suffix.lower() if path.is_file() else ".parquet"  # a folder is a parquet dataset
    if suffix not in _FORMATS:
        raise FraudError(f"dataset {path}: unknown format {suffix!r}; use .parquet, .csv or .jsonl")
    dataset = ds.dataset(path, format=_FORMATS[suffix])
    missing = [name for name in required if name not in dataset.schema.names]
    if missing:
        raise FraudError(f"dataset {path} lacks column(s): {', '.join(missing)}")
    return dataset


def as_utc(batch: pa.RecordBatch, name: str = "event_time") -> pa.RecordBatch:
    """Read naive timestamps as UTC, the convention of every dataset this product writes."""
    column = batch.column(name)
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
        batch = batch.set_column(batch.schema.get_field_index(name), name, column)
    return batch


def read_transactions(path: Path, limit: int | None = None) -> Iterator[Transaction | RejectedRow]:
    """Yield each row as a Transaction, or a RejectedRow saying why it is not one."""
    dataset = open_dataset(path, _FIELDS)
    row_number = 0
    for batch in dataset.to_batches(columns=_FIELDS, batch_size=8192):
        for row in as_utc(batch).to_pylist():
            if limit is not None and row_number >= limit:
                return
            try:
                yield Transaction.model_validate(row)
            except ValidationError as error:
                yield RejectedRow(row_number, describe_validation_error(error))
            row_number += 1
