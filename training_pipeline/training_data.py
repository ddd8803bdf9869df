"""Pipeline step `training data`: point-in-time train/valid/test sets from Feast's offline store.

The entity rows (user, transaction time, label) come from the prepared table;
the features come from `get_historical_features` with the model's feature
service, so training reads exactly what Feast serves.
"""

from __future__ import annotations

import functools
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
    through pandas. Train and valid are sampled down to FRAUD_TRAIN_MAX_ROWS each, test to FRAUD_TEST_MAX_ROWS.
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
    entity_rows = functools.reduce(lambda rows, more: rows.unionByName(more),
                                   (split_entity_rows(spark, settings, split) for split in TRAINING_SPLITS))
    joined = store.get_historical_features(entity_df=entity_rows, features=store.get_feature_service(FEATURE_SERVICE))
    frames = _collect_splits(joined.to_spark_df(), out_dir / ".splits.spark")
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


def split_entity_rows(spark, settings: Settings, split: str):  # -> pyspark.sql.DataFrame
    """Feast's entity rows of one split (user, transaction time, label, split), sampled down to its cap.

    Train and valid to FRAUD_TRAIN_MAX_ROWS: beyond a few million rows the model gains little and the steps after
    pay for each one. Test to FRAUD_TEST_MAX_ROWS: a million rows (about 11,000 frauds) measure PR-AUC to about
    0.005, and every row costs the point-in-time join, the evaluation and the gate. Sampled before the join, from
    the row counts in the prep step's manifest.
    """
    from pyspark.sql import functions as F

    rows = (spark.read.parquet(f"{settings.features_location}/transaction_features.parquet")
            .where(F.col("split") == split).select("user_id", "event_timestamp", "fraud", "split"))
    count = read_result(settings, settings.features_location).rows_per_split[split]
    cap = settings.test_max_rows if split == "test" else settings.train_max_rows
    if count <= cap:
        return rows
    log.info("%s: sampling %d of %d rows (%s)", split, cap, count, "FRAUD_TEST_MAX_ROWS" if split == "test" else "FRAUD_TRAIN_MAX_ROWS")
    return rows.sample(fraction=cap / count, seed=settings.train_seed)


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
