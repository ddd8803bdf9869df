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

    The point-in-time join runs in Feast's Spark offline store; the entity rows never pass through pandas.
    Train and valid are sampled down to FRAUD_TRAIN_MAX_ROWS each; test is never sampled.
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
    service = store.get_feature_service(FEATURE_SERVICE)
    spark = get_spark_session_or_start_new_with_repoconfig(store.config.offline_store)
    paths = {}
    for split in TRAINING_SPLITS:
        entity_rows = split_entity_rows(spark, settings, split)
        joined = store.get_historical_features(entity_df=entity_rows, features=service).to_spark_df()
        frame = _collect_sorted(joined, out_dir / f".{split}.spark")
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
    """Feast's entity rows of one split (user, transaction time, label), sampled down to FRAUD_TRAIN_MAX_ROWS
    for train and valid: beyond a few million rows the model gains little and the steps after pay for each one."""
    from pyspark.sql import functions as F

    rows = (spark.read.parquet(f"{settings.features_location}/transaction_features.parquet")
            .where(F.col("split") == split).select("user_id", "event_timestamp", "fraud"))
    if split == "test":
        return rows
    count = rows.count()
    if count <= settings.train_max_rows:
        return rows
    log.info("%s: sampling %d of %d rows (FRAUD_TRAIN_MAX_ROWS)", split, settings.train_max_rows, count)
    return rows.sample(fraction=settings.train_max_rows / count, seed=settings.train_seed)


def _collect_sorted(joined, scratch: Path) -> pd.DataFrame:  # joined: pyspark.sql.DataFrame
    """The model's columns of Spark's result in time order, through Parquet (no row-by-row collect to the driver)."""
    joined.orderBy("event_timestamp", "user_id").select(*FEATURE_NAMES, "fraud").write.mode("overwrite").parquet(str(scratch))
    try:
        return pq.read_table(scratch).to_pandas()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_split(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Features (in model input order) and labels of one split file."""
    frame = pd.read_parquet(path)
    return frame[list(FEATURE_NAMES)], frame["fraud"].astype(int)
