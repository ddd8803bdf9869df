"""A Spark application for tests/integration/test_image.py, submitted through the image's entrypoint (`driver`).

Its SparkContext runs a one-worker local cluster; beside that worker it starts one executor the way the Spark
operator starts an executor pod: the image's entrypoint with the word `executor` and the SPARK_* variables a
Kubernetes driver sets. Then it runs a job and prints, as JSON, the executor ids and the pod names its tasks saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from pyspark.sql import SparkSession

POD_NAME = "fraud-prep-exec-1"
EXECUTOR_ID = "7"  # Spark's executor ids are numbers, on Kubernetes too


def main(entrypoint: str) -> None:
    spark = (SparkSession.builder.master("local-cluster[1,1,1024]").config("spark.executor.memory", "512m")
             .config("spark.driver.host", "127.0.0.1").config("spark.ui.enabled", "false").getOrCreate())
    context = spark.sparkContext
    port = context.getConf().get("spark.driver.port")
    executor = subprocess.Popen([entrypoint, "executor"], stdout=sys.stderr, env=os.environ | {
        "SPARK_DRIVER_URL": f"spark://CoarseGrainedScheduler@127.0.0.1:{port}",
        "SPARK_EXECUTOR_ID": EXECUTOR_ID, "SPARK_EXECUTOR_CORES": "1", "SPARK_EXECUTOR_MEMORY": "512m",
        "SPARK_APPLICATION_ID": context.applicationId, "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
        "SPARK_EXECUTOR_POD_NAME": POD_NAME, "SPARK_JAVA_OPT_0": f"-Dspark.driver.port={port}",
    })
    try:
        executors = _wait_for_executor(context)  # host:port of each block manager
        # Enough small tasks that both executors get some.
        seen = context.parallelize(range(60), 60).map(lambda _: os.environ.get("SPARK_EXECUTOR_POD_NAME", "")).collect()
        print("RESULT", json.dumps({"block_managers": executors, "pod_names": sorted(set(seen))}), flush=True)
    finally:
        executor.terminate()
        executor.wait(timeout=30)
        spark.stop()


def _wait_for_executor(context) -> list[str]:  # noqa: ANN001 - pyspark's SparkContext
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        infos = context._jsc.sc().statusTracker().getExecutorInfos()
        hosts = sorted(f"{info.host()}:{info.port()}" for info in infos)
        if len(hosts) >= 3:  # the driver, the local cluster's executor, and ours
            return hosts
        time.sleep(0.5)
    raise SystemExit("the entrypoint's executor never registered with the driver")


if __name__ == "__main__":
    main(sys.argv[1])
