"""The prep SparkApplication's main file (``mainApplicationFile`` in training_pipeline/spark_prep.yaml).

Spark's driver pod runs it with the run's locations as arguments. It is the same ``prepare`` as a local run; only
the Spark master differs (the pod's FRAUD_SPARK_MASTER names the cluster). Settings come from the pod's environment.
"""

from __future__ import annotations

import argparse
import logging

from fraud.settings import load_settings
from training_pipeline.prep import prepare


def main(argv: list[str] | None = None) -> None:
    """Run the prep job: ``--raw`` in, ``--out`` out (local paths or s3a:// URIs)."""
    parser = argparse.ArgumentParser(description="The training pipeline's Spark prep, as a Spark driver.")
    parser.add_argument("--raw", required=True, help="raw users.parquet and transactions.parquet")
    parser.add_argument("--out", required=True, help="where the features, profiles and manifest.json go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    prepare(load_settings(), args.raw, args.out)


if __name__ == "__main__":
    main()
