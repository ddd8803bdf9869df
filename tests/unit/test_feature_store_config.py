"""How fraud/feature_store.py opens the local Feast file: the Spark offline store with the product's Spark settings."""

from __future__ import annotations

from pathlib import Path

from fraud.feature_store import open_store
from fraud.settings import Settings


def test_the_offline_store_is_spark_with_the_prep_steps_configuration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, spark_master="local[1]", spark_driver_memory="3g", spark_shuffle_partitions=3,
                        _env_file=None)
    config = open_store(settings).config
    assert config.offline_store.type == "spark"
    conf = config.offline_store.spark_conf
    assert (conf["spark.master"], conf["spark.driver.memory"], conf["spark.sql.shuffle.partitions"]) == ("local[1]", "3g", "3")
    assert "spark.jars.packages" not in conf  # S3A only for s3a:// locations
    # Materializing reads only each user's latest row, and writes the online store in chunks.
    assert config.materialization_config.pull_latest_features
    assert config.materialization_config.online_write_batch_size == 10_000
