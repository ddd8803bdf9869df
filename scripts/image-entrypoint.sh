#!/usr/bin/env bash
# The image's entrypoint. Every service and step names its own command (`python -m predictor`, `fraud ...`, the
# KFP components' `python -m kfp.dsl.executor_main`), which runs as given. Two words are Spark's: the Spark
# operator starts the prep step's driver pod with `driver <spark-submit arguments>` and its executor pods with
# `executor`, the executor's settings in SPARK_* variables, as Spark's own images expect. Here they run on the
# pyspark that `uv sync` installed, and the JRE of the image.
set -euo pipefail

spark_home() {  # pyspark's own directory holds Spark's bin/ and jars/ (spark-submit sets SPARK_HOME for its children)
  if [ -n "${SPARK_HOME:-}" ]; then echo "${SPARK_HOME}"; return; fi
  python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}

case "${1:-}" in
  driver)
    shift
    # Inside the driver pod the application is already placed: submit it here, in client mode, bound to the pod's IP.
    exec "$(spark_home)/bin/spark-submit" --deploy-mode client \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}" "$@"
    ;;
  executor)
    shift
    home="$(spark_home)"
    # The driver hands each executor its JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in that order.
    java_opts=()
    for index in $(compgen -e | sed -n 's/^SPARK_JAVA_OPT_\([0-9]*\)$/\1/p' | sort -n); do
      name="SPARK_JAVA_OPT_${index}"
      java_opts+=("${!name}")
    done
    exec java "${java_opts[@]}" -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "${SPARK_CLASSPATH:+${SPARK_CLASSPATH}:}${home}/jars/*" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL}" --executor-id "${SPARK_EXECUTOR_ID}" --cores "${SPARK_EXECUTOR_CORES}" \
      --app-id "${SPARK_APPLICATION_ID}" --hostname "${SPARK_EXECUTOR_POD_IP}" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
  *)
    exec "$@"
    ;;
esac
