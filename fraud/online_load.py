"""Materialize into Feast's SQLite online store in bulk: each user's latest row from the offline store, then one
`executemany` per chunk, in key order.

Feast's own materialize turns every value into a protobuf through its generic converter (3.5 µs a value here)
and upserts the rows one `execute` at a time: at 1,000,000 users (18 million rows) that took most of the
pipeline's `features` step. This writes the same rows to the same table in the same format (the table Feast's
`apply` made; entity keys by Feast's `serialize_entity_key`; values as serialized `ValueProto`s with the text
Feast keeps beside them) and records the materialized interval in the registry, as `FeatureStore.materialize`
does. Online stores other than SQLite (Redis on a cluster) keep Feast's materialize.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import pyarrow as pa
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import _table_id, adapt_datetime_epoch
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import PYTHON_SCALAR_VALUE_TYPE_TO_PROTO_VALUE, python_values_to_proto_values
from feast.utils import _get_column_names, to_naive_utc

log = logging.getLogger(__name__)
T = TypeVar("T")
TEXT_FIELDS = frozenset({"string_val", "int64_val", "int32_val", "double_val", "float_val", "bool_val"})  # extract_text_and_num's
CHUNK_USERS = 100_000  # users per executemany and transaction: a reader waits for no more than one chunk's commit


def materialize_sqlite(store, start: datetime, end: datetime) -> dict[str, int]:  # store: feast.FeatureStore
    """Write each online feature view's latest row per entity in [start, end]; return the rows (entities) per view."""
    written = {}
    for view in store.list_feature_views():
        if not view.online:
            continue
        latest = latest_rows(store, view, start, end)
        write_rows(store, view, latest)
        store.registry.apply_materialization(view, store.project, start, end, commit=True)
        written[view.name] = latest.num_rows
        log.info("%s: %d entities written to the SQLite online store", view.name, latest.num_rows)
    return written


def latest_rows(store, view, start: datetime, end: datetime) -> pa.Table:
    """Each entity's latest row of the view's batch source in [start, end], by the offline store (Spark here)."""
    join_keys, features, timestamp, created = _get_column_names(view, store.list_entities())
    offline = store._get_provider().offline_store
    return offline.pull_latest_from_table_or_query(
        config=store.config, data_source=view.batch_source, join_key_columns=join_keys,
        feature_name_columns=features, timestamp_field=timestamp, created_timestamp_column=created,
        start_date=start, end_date=end).to_arrow()


def write_rows(store, view, latest: pa.Table) -> None:
    """Upsert the rows of ``latest`` into the view's table in entity key order, a chunk of users per transaction.

    In key order SQLite appends to its B-trees rather than splitting pages all over them (3 million rows: 13.9 s
    instead of 16.6 here).
    """
    table = _table_id(store.project, view, store.config.registry.enable_online_feature_view_versioning)
    connection = store._get_provider().online_store._get_conn(store.config)
    sql = (f'INSERT INTO "{table}" (entity_key, feature_name, value, value_text, event_ts, created_ts) '
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
           "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts")
    keys = _entity_keys(store, view, latest)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    latest, keys = latest.take(order), [keys[row] for row in order]

    def rows_at(offset: int) -> list[tuple[Any, ...]]:
        return list(_rows_of(view, latest.slice(offset, CHUNK_USERS), keys[offset:offset + CHUNK_USERS]))

    for rows in _one_ahead(rows_at, range(0, latest.num_rows, CHUNK_USERS)):
        with connection:  # one transaction per chunk
            connection.executemany(sql, rows)


def _one_ahead(function: Callable[[int], T], items: Sequence[int]) -> Iterator[T]:
    """``function`` of each item in order, the next one computed in a thread while the caller uses this one.

    SQLite inserts without holding the GIL, so the next chunk's rows are built meanwhile; one ahead, no more,
    so no more than two chunks of rows are held.
    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1) as thread:
        pending = thread.submit(function, items[0])
        for following in items[1:]:
            current = pending.result()
            pending = thread.submit(function, following)
            yield current
        yield pending.result()


def _rows_of(view, chunk: pa.Table, keys: list[bytes]) -> Iterator[tuple[Any, ...]]:
    """(entity key, feature, value, value text, event time, created time) for every value of ``chunk``, row by row."""
    event_times = _sqlite_times(chunk.column(view.batch_source.timestamp_field))
    created_column = view.batch_source.created_timestamp_column
    created_times = _sqlite_times(chunk.column(created_column)) if created_column else [None] * chunk.num_rows
    columns = {feature.name: _values(chunk.column(feature.name).to_pylist(), feature.dtype.to_value_type())
               for feature in view.features}
    for row, key in enumerate(keys):
        for name, (values, texts) in columns.items():
            yield key, name, values[row], texts[row], event_times[row], created_times[row]


def _entity_keys(store, view, chunk: pa.Table) -> list[bytes]:
    """Feast's serialized entity key of every row (the view's join keys, as Feast's writers build them)."""
    names = [column.name for column in view.entity_columns]
    values = [python_values_to_proto_values(chunk.column(column.name).to_pylist(), column.dtype.to_value_type())
              for column in view.entity_columns]
    version = store.config.entity_key_serialization_version
    return [serialize_entity_key(EntityKey(join_keys=names, entity_values=list(row)), entity_key_serialization_version=version)
            for row in zip(*values, strict=True)]


def _values(values: list[Any], value_type) -> tuple[list[bytes], list[str | None]]:  # value_type: feast ValueType
    """Serialized ValueProtos and the value_text beside them, as Feast's SQLite writer stores them (null or NaN: empty).

    The field and conversion are those of Feast's type map; the text is `extract_text_and_num`'s. Feast's generic
    converter (`python_values_to_proto_values`) and that helper cost 4.5 µs a value here, this 1.
    """
    field, convert, _ = PYTHON_SCALAR_VALUE_TYPE_TO_PROTO_VALUE[value_type]
    has_text = field in TEXT_FIELDS
    serialized, texts = [], []
    for value in values:
        proto, text = Value(), None
        if value is not None and value == value:
            setattr(proto, field, convert(value))
            text = str(getattr(proto, field)) if has_text else None
        serialized.append(proto.SerializeToString())
        texts.append(text)
    return serialized, texts


def _sqlite_times(column: pa.ChunkedArray) -> list[int | None]:
    """Timestamps as Feast's SQLite writer stores them: naive UTC through the adapter its module registers."""
    return [None if moment is None else adapt_datetime_epoch(to_naive_utc(moment)) for moment in column.to_pylist()]
