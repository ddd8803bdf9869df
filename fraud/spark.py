"""One Spark configuration from settings, for the prep step's session and for Feast's Spark offline store.

Both run Spark on ``FRAUD_SPARK_MASTER`` (local[*] here, a cluster's master there) and read the same
locations (local paths, or s3a:// URIs with Hadoop's S3A client), so they share this configuration
instead of keeping two copies that could drift apart.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from fraud.settings import Settings


def spark_conf(settings: Settings) -> dict[str, str]:
    """Spark properties of every session the product starts (prep, Feast's offline store)."""
    return {
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Timestamps as UTC-adjusted micros, which pyarrow, pandas and Feast read as UTC (INT96 reads as naive).
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        **s3a_conf(settings),
    }


def s3a_conf(settings: Settings) -> dict[str, str]:
    """Hadoop S3A settings when a location is s3a://; the hadoop-aws jar matches Spark's own Hadoop."""
    if not any(location.startswith("s3a://") for location in (settings.raw_location, settings.features_location)):
        return {}
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    hadoop = next(jars.glob("hadoop-client-api-*.jar")).stem.removeprefix("hadoop-client-api-")
    config = {"spark.jars.packages": f"org.apache.hadoop:hadoop-aws:{hadoop}", "spark.hadoop.fs.s3a.path.style.access": "true",
              # Ivy's cache in the temp dir: a pod's root filesystem (and home) may be read-only.
              "spark.jars.ivy": str(Path(tempfile.gettempdir()) / ".ivy2")}
    if settings.s3_endpoint:
        config["spark.hadoop.fs.s3a.endpoint"] = settings.s3_endpoint
    if settings.s3_access_key and settings.s3_secret_key:
        config["spark.hadoop.fs.s3a.access.key"] = settings.s3_access_key
        config["spark.hadoop.fs.s3a.secret.key"] = settings.s3_secret_key.get_secret_value()
    return config


def prepare_process() -> None:
    """What a process must have before it starts Spark: a loopback address, and this venv for Python workers."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
