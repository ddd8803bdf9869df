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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from fraud.features import FEATURE_NAMES, INPUT_COLUMNS, compute_features
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


def _features_of_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: the shared feature formulas on each Arrow batch of window inputs.

    Arrow rather than pandas: the id and time columns pass through untouched instead of becoming Python
    objects and back (a null history value reads as NaN, as pandas gave it).
    """
    for batch in batches:
        features = compute_features({name: batch.column(name).to_numpy(zero_copy_only=False) for name in INPUT_COLUMNS})
        yield pa.RecordBatch.from_arrays([*(batch.column(name) for name in PASSED_THROUGH),
                                          *(pa.array(features[name], pa.float64()) for name in FEATURE_NAMES)],
                                         names=[*PASSED_THROUGH, *FEATURE_NAMES])


def prepare(settings: Settings, raw: str | Path | None = None, out: str | Path | None = None, spark=None) -> PrepResult:
    """Run the step on local paths or s3a:// URIs; ``spark`` may be an existing session (tests reuse one)."""
    from pyspark.sql import Window
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
        users.join(early.groupBy("user_id").agg(F.median("amount").alias("median_purchase_amount")), "user_id", "left")
        .select(
            "user_id", "home_latitude", "home_longitude",
            F.coalesce("median_purchase_amount", F.lit(float(population_median))).alias("median_purchase_amount"),
            F.lit(split.profile_end).alias("event_timestamp"),
            F.lit(created).alias("created_timestamp"),
        )
    )

    if "://" not in out:
        Path(out).mkdir(parents=True, exist_ok=True)
    profile_path, features_path, manifest_path = (f"{out}/{name}" for name in (
        "user_profile.parquet", "transaction_features.parquet", "manifest.json"))
    profile.write.mode("overwrite").parquet(profile_path)
    # The join below reads the written profiles back rather than computing every user's median a second time.
    profile = spark.read.parquet(profile_path)

    # History strictly before each transaction: frames end one row before the current one.
    in_user_order = Window.partitionBy("user_id").orderBy("event_time", "transaction_id")
    before = in_user_order.rowsBetween(Window.unboundedPreceding, -1)
    before_at_merchant = (Window.partitionBy("user_id", "merchant_id").orderBy("event_time", "transaction_id")
                          .rowsBetween(Window.unboundedPreceding, -1))
    time_s = F.col("event_time").cast("double")
    history = transactions.select(
        "transaction_id", "user_id", F.col("event_time").alias("event_timestamp"),
        time_s.alias("event_time_s"), "amount", "latitude", "longitude",
        F.col("used_chip").cast("double").alias("used_chip"),
        F.col("used_pin_number").cast("double").alias("used_pin_number"),
        F.col("online_order").cast("double").alias("online_order"),
        F.col("fraud").cast("int").alias("fraud"),
        F.count("amount").over(before).cast("double").alias("history_count"),
        F.avg("amount").over(before).alias("history_mean_amount"),
        F.max("amount").over(before).alias("history_max_amount"),
        F.stddev_samp("amount").over(before).alias("history_std_amount"),
        F.min(time_s).over(before).alias("first_time_s"),
        F.lag(time_s).over(in_user_order).alias("last_time_s"),
        F.lag("latitude").over(in_user_order).alias("last_latitude"),
        F.lag("longitude").over(in_user_order).alias("last_longitude"),
        F.count("amount").over(before_at_merchant).cast("double").alias("merchant_seen_before"),
    ).withColumn(
        "split",
        F.when(F.col("event_timestamp") < F.lit(split.profile_end), "profile")
        .when(F.col("event_timestamp") < F.lit(split.valid_start), "train")
        .when(F.col("event_timestamp") < F.lit(split.test_start), "valid")
        .otherwise("test"),
    )
    inputs = history.join(
        profile.select("user_id", "home_latitude", "home_longitude", "median_purchase_amount"), "user_id", "left"
    )
    schema = T.StructType(
        [T.StructField("transaction_id", T.StringType()), T.StructField("user_id", T.StringType()),
         T.StructField("event_timestamp", T.TimestampType()), T.StructField("fraud", T.IntegerType()),
         T.StructField("split", T.StringType())]
        + [T.StructField(name, T.DoubleType()) for name in FEATURE_NAMES]
    )
    features = inputs.mapInArrow(_features_of_batches, schema).withColumn("created_timestamp", F.lit(created))

    features.write.mode("overwrite").parquet(features_path)
    counts = {row["split"]: row["count"] for row in spark.read.parquet(features_path).groupBy("split").count().collect()}
    rows_per_split = {name: int(counts.get(name, 0)) for name in SPLITS}
    _write_text(settings, manifest_path, json.dumps(
        {"split": {k: v.isoformat() for k, v in asdict(split).items()}, "rows": rows_per_split,
         "features": list(FEATURE_NAMES), "created": created.isoformat()}, indent=2))
    log.info("prepared %s rows per split in %s", rows_per_split, out)
    return PrepResult(features_path, profile_path, manifest_path, rows_per_split, split)
