"""Pipeline step `training data`: point-in-time train/valid/test sets from Feast's offline store.

The entity rows (user, transaction time, label) come from the prepared table;
the features come from `get_historical_features` with the model's feature
service, so training reads exactly what Feast serves.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud.feature_store import open_store
from fraud.features import FEATURE_NAMES
from fraud.settings import Settings
from training_pipeline.prep import read_result

log = logging.getLogger(__name__)
TRAINING_SPLITS = ("train", "valid", "test")
SERVED_ROWS_KEY = b"fraud.served_rows"  # Parquet metadata: how many of a split's rows (the last ones) are served rows


def write_split(frame: pd.DataFrame, path: Path, served_rows: int = 0) -> None:
    """One split file; its last ``served_rows`` rows are labelled served rows (said in its Parquet metadata)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), SERVED_ROWS_KEY: str(served_rows).encode()}),
                   path)


def history_rows(path: Path) -> pd.DataFrame:
    """A split file without its labelled served rows: the Feast history alone.

    The served rows are labelled by outcome (every fraud, a share of the legitimate),
    so they are not a sample of the traffic; the drift reference must not include them.
    """
    frame = pd.read_parquet(path)
    served = int((pq.read_schema(path).metadata or {}).get(SERVED_ROWS_KEY, b"0"))
    return frame.iloc[: len(frame) - served]


def build_training_sets(settings: Settings, out_dir: Path | None = None,
                        served: dict[str, pd.DataFrame] | None = None) -> dict[str, Path]:
    """Write ``<out>/{train,valid,test}.parquet``: FEATURE_NAMES columns plus `fraud`; return the paths.

    One point-in-time join for the three splits, in Feast's Spark offline store; the entity rows never pass
    through pandas. Each split is sampled down to its cap (FRAUD_TRAIN_MAX_ROWS, FRAUD_VALID_MAX_ROWS, FRAUD_TEST_MAX_ROWS).
    ``served`` (from `training_pipeline.served`) adds rows per split, after the Feast ones; each file
    says how many in its Parquet metadata (`served_rows`).
    """
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
        get_spark_session_or_start_new_with_repoconfig,
    )

    from feature_repo.definitions import FEATURE_SERVICE

    out_dir = out_dir or settings.data_dir / "training"
    out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    spark = get_spark_session_or_start_new_with_repoconfig(store.config.offline_store)
    rows = entity_rows(spark, settings)
    joined = store.get_historical_features(entity_df=rows, features=store.get_feature_service(FEATURE_SERVICE))
    try:
        frames = _collect_splits(joined.to_spark_df(), out_dir / ".splits.spark")
    finally:
        rows.unpersist()
    paths = {}
    for split, frame in frames.items():
        if frame[list(FEATURE_NAMES)].isna().any().any():
            raise ValueError(f"{split}: Feast returned rows without features; was `fraud pipeline features` run?")
        if served is not None and len(served[split]):
            frame = pd.concat([frame, served[split][[*FEATURE_NAMES, "fraud"]]], ignore_index=True)
            log.info("%s: %d of its rows are labelled served rows", split, len(served[split]))
        paths[split] = out_dir / f"{split}.parquet"
        write_split(frame, paths[split], served_rows=len(served[split]) if served is not None else 0)
        log.info("%s: %d rows, %.2f%% fraud", split, len(frame), 100 * frame["fraud"].mean())
    return paths


def entity_rows(spark, settings: Settings):  # -> pyspark.sql.DataFrame
    """Feast's entity rows (user, transaction time, label, split) of train, valid and test, each sampled to its cap.

    Train to FRAUD_TRAIN_MAX_ROWS: beyond a few million rows the model gains little and the steps after pay for
    each one. Valid and test to FRAUD_VALID_MAX_ROWS and FRAUD_TEST_MAX_ROWS: half a million rows (about 5,500
    frauds) pick the epoch and the threshold and measure PR-AUC to about 0.007, and every row costs the
    point-in-time join (about 17 feature rows each at 1,000,000 users), the training's validation, the evaluation
    and the gate. Sampled before the join, from the row counts in the prep step's manifest, in one pass over the
    prepared table; cached, because Feast reads them three times (the time range's minimum and maximum, the join).
    """
    from pyspark.sql import functions as F

    counts = read_result(settings, settings.features_location).rows_per_split
    fractions = {split: min(1.0, _cap(settings, split) / max(counts[split], 1)) for split in TRAINING_SPLITS}
    for split, fraction in fractions.items():
        if fraction < 1.0:
            log.info("%s: sampling %d of %d rows (FRAUD_%s_MAX_ROWS)", split, _cap(settings, split), counts[split],
                     split.upper())
    rows = (spark.read.parquet(f"{settings.features_location}/transaction_features.parquet")
            .where(F.col("split").isin(*TRAINING_SPLITS)).select("user_id", "event_timestamp", "fraud", "split"))
    return rows.sampleBy("split", fractions, seed=settings.train_seed).cache()


def _cap(settings: Settings, split: str) -> int:
    """The most rows ``split`` keeps: FRAUD_TRAIN_MAX_ROWS, FRAUD_VALID_MAX_ROWS or FRAUD_TEST_MAX_ROWS."""
    return {"train": settings.train_max_rows, "valid": settings.valid_max_rows, "test": settings.test_max_rows}[split]


def _collect_splits(joined, scratch: Path) -> dict[str, pd.DataFrame]:  # joined: pyspark.sql.DataFrame
    """Each split's model columns in time order, through Parquet (no row-by-row collect to the driver).

    Spark writes the join's result once, a folder per split; the time order is Arrow's sort of each split,
    not a global sort in Spark (which samples its input in an extra pass first).
    """
    joined.select(*FEATURE_NAMES, "fraud", "event_timestamp", "user_id", "split").write.mode("overwrite").partitionBy(
        "split").parquet(str(scratch))
    try:
        return {split: pq.read_table(scratch / f"split={split}").sort_by([("event_timestamp", "ascending"), ("user_id", "ascending")])
                .select([*FEATURE_NAMES, "fraud"]).to_pandas() for split in TRAINING_SPLITS}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_split(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Features (in model input order) and labels of one split file."""
    frame = pd.read_parquet(path)
    return frame[list(FEATURE_NAMES)], frame["fraud"].astype(int)
