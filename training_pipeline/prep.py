"""Pipeline step `prep`: raw transactions -> point-in-time feature table and user profiles, with Spark.

Reads ``<raw>/users.parquet`` and ``<raw>/transactions.parquet`` and writes to ``<out>``:
- ``user_profile.parquet``: home location and median purchase amount per user,
  computed from the oldest ``profile_fraction`` of the window only;
- ``transaction_features.parquet``: one row per transaction with the model's
  features (history strictly before it), the label and its time split;
- ``manifest.json``: the time boundaries and row counts.

The time window is cut, never sampled: [profile | train | valid | test]. Rows in
the profile part only warm up the history; they are not trained on, because the
profile they would be scored with was computed from them.

The history takes one shuffle and one sort: Spark gathers each user's transactions in one partition, sorted by
time, and `sorted_history` sums them per user in numpy, whole users at a time, inside `mapInArrow`. Spark window
functions did the same with a second sort (by user and merchant); at a million users the Spark part took 237 s with
them and 207 s without, on the same machine.

The user's profile joins there too, in numpy, from a broadcast copy of the profile table, once per run of a user's
rows (`ProfileLookup`). Spark's broadcast hash join on the string user id, before the shuffle, cost 15-19 s of the
step at a million users (about 1 µs a row), and the shuffle then carried three more columns.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud.features import FEATURE_NAMES, compute_features, rank_within_groups
from fraud.settings import Settings
from fraud.spark import prepare_process, spark_conf

log = logging.getLogger(__name__)

SPLITS = ("profile", "train", "valid", "test")


@dataclass(frozen=True)
class TimeSplit:
    """Boundaries of the time window's parts (UTC)."""

    start: datetime
    profile_end: datetime
    valid_start: datetime
    test_start: datetime
    end: datetime

    @classmethod
    def of_window(cls, start: datetime, end: datetime, settings: Settings) -> TimeSplit:
        span = end - start
        return cls(
            start=start,
            profile_end=start + span * settings.profile_fraction,
            valid_start=end - span * (settings.valid_fraction + settings.test_fraction),
            test_start=end - span * settings.test_fraction,
            end=end,
        )


@dataclass(frozen=True)
class PrepResult:
    """Where the step wrote its outputs (paths or URIs), and the row counts per split."""

    features_path: str
    profile_path: str
    manifest_path: str
    rows_per_split: dict[str, int]
    split: TimeSplit


def spark_session(settings: Settings, app_name: str = "fraud-prep"):  # -> pyspark.sql.SparkSession
    """A Spark session from settings: local[*] on a laptop, the configured master on a cluster."""
    prepare_process()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _s3(settings: Settings):  # -> pyarrow.fs.S3FileSystem
    """pyarrow's S3 filesystem on FRAUD_S3_ENDPOINT, for the small files beside Spark's output."""
    from pyarrow import fs

    return fs.S3FileSystem(
        endpoint_override=settings.s3_endpoint, access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
    )


def _write_text(settings: Settings, location: str, text: str) -> None:
    """Write a small text file to a local path or an s3a:// URI."""
    if not location.startswith("s3a://"):
        Path(location.removeprefix("file://")).write_text(text)
        return
    with _s3(settings).open_output_stream(location.removeprefix("s3a://")) as stream:
        stream.write(text.encode())


def read_text(settings: Settings, location: str) -> str:
    """Read a small text file from a local path or an s3a:// URI."""
    if not location.startswith("s3a://"):
        return Path(location.removeprefix("file://")).read_text()
    with _s3(settings).open_input_stream(location.removeprefix("s3a://")) as stream:
        return stream.read().decode()


def read_result(settings: Settings, out: str) -> PrepResult:
    """The PrepResult of a prep run that wrote to ``out`` elsewhere (a Spark cluster's driver), from its manifest."""
    out = out.rstrip("/")
    manifest = json.loads(read_text(settings, f"{out}/manifest.json"))
    split = TimeSplit(**{name: datetime.fromisoformat(value) for name, value in manifest["split"].items()})
    return PrepResult(f"{out}/transaction_features.parquet", f"{out}/user_profile.parquet", f"{out}/manifest.json",
                      {name: int(count) for name, count in manifest["rows"].items()}, split)


PASSED_THROUGH = ("transaction_id", "user_id", "event_timestamp", "fraud", "split")
# Input columns of compute_features read as they are from a transaction (see `prepare`), and from its user's profile.
_READ_AS_IS = ("amount", "latitude", "longitude", "used_chip", "used_pin_number", "online_order")
PROFILE_COLUMNS = ("home_latitude", "home_longitude", "median_purchase_amount")
# Parquet dictionaries only where few values repeat: building one for a column of (nearly) unique values, only to
# drop it, took 20-25 s of the step's write at a million users.
_DICTIONARY_COLUMNS = ("user_id", "fraud", "split", "repeat_retailer", "used_chip", "used_pin_number", "online_order")
_MICROS = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (Spark's and Arrow's timestamps)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROS


class ProfileLookup:
    """Users' profile columns by user id, from the profile table (user_id and PROFILE_COLUMNS); NaN for a stranger.

    Built once per Spark task from the broadcast table: a pandas index hashes the ids once, and each batch looks up
    only its users, not its rows.
    """

    def __init__(self, profiles: pa.Table) -> None:
        self._index = pd.Index(profiles.column("user_id").to_numpy(zero_copy_only=False))
        self._columns = {name: np.append(np.asarray(profiles.column(name).to_numpy(zero_copy_only=False), np.float64),
                                         np.nan) for name in PROFILE_COLUMNS}

    def of_users(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """PROFILE_COLUMNS of each of ``users``; a user without a profile reads NaN (the last, extra row)."""
        at = self._index.get_indexer(users)
        return {name: values[at] for name, values in self._columns.items()}  # -1 -> the NaN row


def user_runs(users: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by user: where each user's run starts, and each row's run number."""
    rows = len(users)
    new_user = np.ones(rows, dtype=bool)
    if rows > 1:
        new_user[1:] = pc.not_equal(users.slice(1), users.slice(0, rows - 1)).to_numpy(zero_copy_only=False)
    return np.flatnonzero(new_user), np.cumsum(new_user) - 1


def sorted_history(table: pa.Table, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The history columns of INPUT_COLUMNS for rows sorted by user, then time: each user's rows strictly before.

    ``columns`` holds the rows' event_time_s, amount, latitude and longitude as numbers, ``table`` their user and
    merchant ids, of whole users only (`_features_of_sorted` cuts batches so). Sums and maxima run per user, rank by
    rank (the k-th row of every user at once), so no user's figures mix with another's. The variance comes from
    sums of amounts shifted by the user's first one, a different algorithm from the stream's Welford fold
    (`fold_activity`), which the parity test holds it to.
    """
    rows = table.num_rows
    starts, user_of = user_runs(table.column("user_id"))
    first = starts[user_of]
    rank = (np.arange(rows) - first).astype(np.float64)
    amount, time_s = np.asarray(columns["amount"], np.float64), columns["event_time_s"]
    shifted = amount - amount[first]
    total, squares, highest = np.zeros(rows), np.zeros(rows), np.full(rows, np.nan)
    sizes = np.diff(np.append(starts, rows))
    for k in range(1, int(sizes.max(initial=0))):
        at = starts[sizes > k] + k  # every user's k-th row (from 0)
        before = at - 1
        total[at] = total[before] + shifted[before]
        squares[at] = squares[before] + shifted[before] ** 2
        highest[at] = np.fmax(highest[before], amount[before])
    has = rank > 0
    previous = np.where(has, np.arange(rows) - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(has, amount[first] + total / rank, np.nan)
        variance = np.where(rank > 1, (squares - total * total / rank) / (rank - 1), np.nan)
    history = {
        "history_count": rank,
        "history_mean_amount": mean,
        "history_max_amount": highest,
        "history_std_amount": np.sqrt(np.maximum(variance, 0.0)),
        "first_time_s": np.where(has, time_s[first], np.nan),
        "merchant_seen_before": _seen_before(user_of, table.column("merchant_id")),
    }
    for name in ("event_time_s", "latitude", "longitude"):
        history["last_" + name.removeprefix("event_")] = np.where(has, columns[name][previous], np.nan)
    return history


def _seen_before(user_of: np.ndarray, merchants: pa.ChunkedArray) -> np.ndarray:
    """How many of the user's earlier rows were at the same merchant (rows in time order within each user)."""
    codes = pc.dictionary_encode(merchants).combine_chunks().indices.to_numpy().astype(np.int64)
    return rank_within_groups(user_of.astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes).astype(np.float64)


def _features_of_sorted(split: TimeSplit, profiles: Callable[[], pa.Table],
                        batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body over a partition sorted by user, then time: the features of each run of whole users.

    ``profiles`` gives the profile table (a broadcast variable's value in Spark). A batch's last user may go on in
    the next batch, so its rows wait for it; Spark hands a partition's batches over in order, and the partition
    holds all of a user's rows.
    """
    lookup: ProfileLookup | None = None
    waiting: list[pa.RecordBatch] = []
    for batch in batches:
        if not batch.num_rows:
            continue
        lookup = lookup or ProfileLookup(profiles())  # once, at the first rows: an empty partition needs none
        table = pa.Table.from_batches([*waiting, batch]).combine_chunks()
        users = table.column("user_id")
        last_user_starts = table.num_rows - 1
        while last_user_starts > 0 and users[last_user_starts - 1] == users[table.num_rows - 1]:
            last_user_starts -= 1
        if last_user_starts > 0:
            yield _features_of_users(split, lookup, table.slice(0, last_user_starts))
        waiting = table.slice(last_user_starts).to_batches()
    if waiting:
        yield _features_of_users(split, lookup, pa.Table.from_batches(waiting).combine_chunks())


def _features_of_users(split: TimeSplit, lookup: ProfileLookup, table: pa.Table) -> pa.RecordBatch:
    """The output rows (PASSED_THROUGH, then FEATURE_NAMES) of whole users' rows in time order.

    The split, the label's type and the time in seconds are derived here rather than in Spark, so the shuffle
    before carries less.
    """
    micros = table.column("event_timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
    time_s = micros / 1e6  # Spark's cast of a timestamp to double
    inputs = {name: table.column(name).to_numpy(zero_copy_only=False) for name in _READ_AS_IS}
    starts, user_of = user_runs(table.column("user_id"))
    users = table.column("user_id").take(starts).to_numpy(zero_copy_only=False)
    inputs |= {name: values[user_of] for name, values in lookup.of_users(users).items()}
    inputs["event_time_s"] = time_s
    features = compute_features(inputs | sorted_history(table, inputs))
    edges = [_micros(moment) for moment in (split.profile_end, split.valid_start, split.test_start)]
    parts = np.array(SPLITS, dtype=object)[np.searchsorted(edges, micros, side="right")]
    passed = {"transaction_id": table.column("transaction_id").combine_chunks(),
              "user_id": table.column("user_id").combine_chunks(),
              "event_timestamp": table.column("event_timestamp").combine_chunks(),
              "fraud": table.column("fraud").combine_chunks().cast(pa.int32()),
              "split": pa.array(parts, pa.string())}
    return pa.RecordBatch.from_arrays([*(passed[name] for name in PASSED_THROUGH),
                                      *(pa.array(features[name], pa.float64()) for name in FEATURE_NAMES)],
                                     names=[*PASSED_THROUGH, *FEATURE_NAMES])


def _medians(early):  # pyspark DataFrame (user_id, amount, ...) -> (user_id, median_purchase_amount)
    """Each user's exact median amount: the middle row, or the mean of the two middle rows, of the user's amounts.

    By rank in a sort rather than Spark's `median` aggregate, which keeps a map of values per user (its stages took
    30 s at a million users here, these 21). The sort leads with a hash of the user id, as in `prepare`.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    user = (F.xxhash64("user_id"), "user_id")
    ranked = early.select(
        "user_id", "amount", F.row_number().over(Window.partitionBy(*user).orderBy("amount")).alias("rank"),
        F.count("amount").over(Window.partitionBy(*user)).alias("count"))
    middle = (F.col("rank") == F.floor((F.col("count") + 1) / 2)) | (F.col("rank") == F.floor(F.col("count") / 2) + 1)
    return ranked.where(middle).groupBy("user_id").agg(F.avg("amount").alias("median_purchase_amount"))


def prepare(settings: Settings, raw: str | Path | None = None, out: str | Path | None = None, spark=None) -> PrepResult:
    """Run the step on local paths or s3a:// URIs; ``spark`` may be an existing session (tests reuse one)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    raw = str(raw or settings.raw_location).rstrip("/")
    out = str(out or settings.features_location).rstrip("/")
    spark = spark or spark_session(settings)
    transactions = spark.read.parquet(f"{raw}/transactions.parquet")
    users = spark.read.parquet(f"{raw}/users.parquet")

    bounds = transactions.agg(F.min("event_time").alias("start"), F.max("event_time").alias("end")).first()
    if bounds is None or bounds["start"] is None:
        raise ValueError(f"no transactions in {raw}")
    split = TimeSplit.of_window(bounds["start"].astimezone(UTC), bounds["end"].astimezone(UTC), settings)
    created = datetime.now(UTC)

    # User profiles: from the profile part of the window only. A user without any
    # purchase there gets the population median.
    early = transactions.where(F.col("event_time") < F.lit(split.profile_end))
    population_median = early.agg(F.median("amount")).first()[0] or 1.0
    profile = (
        users.join(_medians(early), "user_id", "left")
        .select(
            "user_id", "home_latitude", "home_longitude",
            F.coalesce("median_purchase_amount", F.lit(float(population_median))).alias("median_purchase_amount"),
            F.lit(split.profile_end).alias("event_timestamp"),
        )
    )

    if "://" not in out:
        Path(out).mkdir(parents=True, exist_ok=True)
    profile_path, features_path, manifest_path = (f"{out}/{name}" for name in (
        "user_profile.parquet", "transaction_features.parquet", "manifest.json"))
    profile.write.mode("overwrite").parquet(profile_path)
    # The join below reads the written profiles back rather than computing every user's median a second time.
    profile = spark.read.parquet(profile_path)

    # Every user's rows together and in time order: one shuffle and one sort, then the profile, the history and the
    # formulas in numpy (`_features_of_sorted`), with the profiles broadcast to every task. The sort leads with a
    # 64-bit hash of the user id, which Spark's sort compares as a number (the ids share their first 8 bytes, which it
    # would compare first, then whole); the id after it keeps two users with the same hash apart.
    rows = transactions.select(
        "transaction_id", "user_id", "merchant_id", F.col("event_time").alias("event_timestamp"), "amount", "latitude",
        "longitude", "used_chip", "used_pin_number", "online_order", "fraud",
    )
    profiles = spark.sparkContext.broadcast(profile.select("user_id", *PROFILE_COLUMNS).toArrow())
    in_user_order = (rows.repartition("user_id")
                     .sortWithinPartitions(F.xxhash64("user_id"), "user_id", "event_timestamp", "transaction_id"))
    schema = T.StructType(
        [T.StructField("transaction_id", T.StringType()), T.StructField("user_id", T.StringType()),
         T.StructField("event_timestamp", T.TimestampType()), T.StructField("fraud", T.IntegerType()),
         T.StructField("split", T.StringType())]
        + [T.StructField(name, T.DoubleType()) for name in FEATURE_NAMES]
    )
    features = in_user_order.mapInArrow(functools.partial(_features_of_sorted, split, lambda: profiles.value),
                                        schema)

    dictionaries = {f"parquet.enable.dictionary#{name}": "true" for name in _DICTIONARY_COLUMNS}
    features.write.mode("overwrite").options(**{"parquet.enable.dictionary": "false", **dictionaries}).parquet(
        features_path)
    profiles.destroy()
    counts = {row["split"]: row["count"] for row in spark.read.parquet(features_path).groupBy("split").count().collect()}
    rows_per_split = {name: int(counts.get(name, 0)) for name in SPLITS}
    _write_text(settings, manifest_path, json.dumps(
        {"split": {k: v.isoformat() for k, v in asdict(split).items()}, "rows": rows_per_split,
         "features": list(FEATURE_NAMES), "created": created.isoformat()}, indent=2))
    log.info("prepared %s rows per split in %s", rows_per_split, out)
    return PrepResult(features_path, profile_path, manifest_path, rows_per_split, split)
