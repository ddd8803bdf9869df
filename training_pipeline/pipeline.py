"""The KFP v2 training pipeline: prep -> features -> training data -> train -> evaluate -> register (gated) -> deploy.

Each component is a thin wrapper that imports its step from `training_pipeline.steps`
and runs in the project image, which has this package installed (so no
`pip install` at run time). Locally, `kfp.local`'s SubprocessRunner runs the same
components as processes of this virtualenv (`fraud pipeline run`); for a cluster,
`fraud pipeline compile` writes `training_pipeline/pipeline.yaml`.

The promotion decision lives inside the `register` step, not in `dsl.If`: KFP
2.16's local runner evaluates conditions wrongly, and this way a local run and
a cluster run behave the same.
"""

# No `from __future__ import annotations` here: KFP reads the components' annotations at runtime.
from collections.abc import Callable
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

PIPELINE_NAME = "fraud-training"
COMPILED = Path(__file__).with_name("pipeline.yaml")

# What every step pod gets on a cluster (manifests/base; tests/cluster/test_pipeline_pods.py holds them together):
# the settings every component shares, the pipeline's own, and the secrets, as FRAUD_* variables.
CLUSTER_CONFIG_MAPS = {
    "fraud-settings": ("FRAUD_KAFKA_BOOTSTRAP", "FRAUD_MODEL_NAME", "FRAUD_DATA_DIR", "FRAUD_FEAST_CONFIG",
                       "FRAUD_FEAST_REDIS_ADDRESS", "FRAUD_FEAST_REGISTRY_URI"),
    "fraud-pipeline-settings": ("FRAUD_S3_ENDPOINT", "FRAUD_RAW_URI", "FRAUD_FEATURES_URI", "FRAUD_ARTIFACT_BUCKET",
                                "FRAUD_MODEL_REGISTRY_URL", "FRAUD_SPARK_SUBMIT", "FRAUD_SPARK_NAMESPACE",
                                "FRAUD_PIPELINE_IMAGE", "FRAUD_DEPLOY_TARGET", "FRAUD_KSERVE_NAMESPACE",
                                "FRAUD_KAFKA_SECURITY_PROTOCOL", "FRAUD_KAFKA_SASL_MECHANISM", "FRAUD_KAFKA_SASL_USERNAME"),
}
CLUSTER_SECRETS = {
    "fraud-s3": {"access-key": "FRAUD_S3_ACCESS_KEY", "secret-key": "FRAUD_S3_SECRET_KEY"},
    "fraud-redis": {"password": "FRAUD_FEAST_REDIS_PASSWORD"},
    "fraud-pipeline": {"password": "FRAUD_KAFKA_SASL_PASSWORD"},  # Strimzi's Secret of the KafkaUser fraud-pipeline
}
CLUSTER_POD_LABELS = {"fraud.example.com/feature-store-client": "true"}  # Redis' NetworkPolicy lets them in


def build_pipeline(image: str, on_cluster: bool = False) -> Callable:
    """The pipeline function, with every step running in ``image``; ``on_cluster``: each step pod gets the
    cluster's settings and secrets (`CLUSTER_CONFIG_MAPS`, `CLUSTER_SECRETS`) and labels."""

    def component(function: Callable) -> Callable:
        return dsl.component(function, base_image=image, install_kfp_package=False)

    @component
    def prep(data_dir: str, users: int, prepared: Output[Dataset]):
        """Spark: point-in-time features and user profiles (generates data first if there is none)."""
        from training_pipeline.steps import run_prep

        rows = run_prep(data_dir, users, prepared.path)
        prepared.metadata.update({f"rows_{split}": count for split, count in rows.items()})

    @component
    def features(data_dir: str, prepared: Input[Dataset], feature_store: Output[Artifact]):
        """Feast: apply the repo and materialize the prepared window into the online store."""
        from training_pipeline.steps import run_features

        applied = run_features(data_dir, prepared.path)
        feature_store.metadata["applied"] = ", ".join(applied)
        with open(feature_store.path, "w") as marker:
            marker.write("\n".join(applied))

    @component
    def training_data(data_dir: str, labelled_window_days: float, feature_store: Input[Artifact], train: Output[Dataset],
                      valid: Output[Dataset], test: Output[Dataset], traffic: Output[Dataset]):
        """Point-in-time train/valid/test sets from Feast's offline store, plus labelled served rows of the window
        (and the window's served traffic, the drift reference of a model trained on it)."""
        from training_pipeline.steps import run_training_data

        served = run_training_data(data_dir, train.path, valid.path, test.path, labelled_window_days, traffic.path)
        for split, dataset in (("train", train), ("valid", valid), ("test", test)):
            dataset.metadata["served_rows"] = served.get(split, 0)

    @component
    def train_model(data_dir: str, train: Input[Dataset], valid: Input[Dataset], test: Input[Dataset],
                    traffic: Input[Dataset], model: Output[Model]):
        """Keras MLP with scaling inside, exported to ONNX (one input), ONNX == Keras checked on test."""
        from training_pipeline.steps import run_train

        model.metadata.update(run_train(data_dir, train.path, valid.path, test.path, model.path, traffic.path))
        model.metadata["framework"] = "onnx"

    @component
    def evaluate(data_dir: str, model: Input[Model], train: Input[Dataset], valid: Input[Dataset], test: Input[Dataset],
                 traffic: Input[Dataset], prepared: Input[Dataset], candidate: Output[Model], metrics: Output[Metrics],
                 classification: Output[ClassificationMetrics], report: Output[HTML]):
        """Test metrics beside a HistGradientBoosting baseline, the threshold, the report, the candidate model."""
        from training_pipeline.steps import run_evaluate

        evaluation = run_evaluate(data_dir, model.path, train.path, valid.path, test.path, prepared.path,
                                  candidate.path, report.path, traffic.path)
        for name, value in evaluation.metrics().items():
            metrics.log_metric(name, value)
        classification.log_roc_curve(evaluation.roc["fpr"], evaluation.roc["tpr"], evaluation.roc["thresholds"])
        classification.log_confusion_matrix(["legit", "fraud"], evaluation.confusion)
        candidate.metadata.update({"threshold": evaluation.threshold, "pr_auc": evaluation.pr_auc})

    @component
    def register(data_dir: str, candidate: Input[Model], test: Input[Dataset], decision: Output[Artifact]) -> bool:
        """The gate: register and promote the candidate only if it beats production on the same test split."""
        from training_pipeline.steps import run_register

        verdict = run_register(data_dir, candidate.path, test.path, decision.path)
        decision.metadata.update({k: v for k, v in verdict.items() if v is not None})
        return bool(verdict["promoted"])

    @component
    def deploy(data_dir: str, decision: Input[Artifact]) -> str:
        """Roll out the promoted version (locally: record it); a no-op when nothing was promoted."""
        from training_pipeline.steps import run_deploy

        return run_deploy(data_dir, decision.path)

    @dsl.pipeline(name=PIPELINE_NAME, description="Train, evaluate, gate, register and deploy the fraud model.")
    def fraud_training(data_dir: str = "", users: int = 0, labelled_window_days: float = 0.0) -> str:
        """``data_dir`` "" = settings from the environment (cluster); ``users`` 0 = FRAUD_PIPELINE_USERS;
        ``labelled_window_days`` 0 = FRAUD_RETRAIN_LABELLED_WINDOW_DAYS (default 0: no served rows)."""
        prepared = prep(data_dir=data_dir, users=users)
        store = features(data_dir=data_dir, prepared=prepared.outputs["prepared"])
        sets = training_data(data_dir=data_dir, labelled_window_days=labelled_window_days,
                             feature_store=store.outputs["feature_store"])
        trained = train_model(data_dir=data_dir, train=sets.outputs["train"], valid=sets.outputs["valid"],
                              test=sets.outputs["test"], traffic=sets.outputs["traffic"])
        evaluated = evaluate(data_dir=data_dir, model=trained.outputs["model"], train=sets.outputs["train"],
                             valid=sets.outputs["valid"], test=sets.outputs["test"], traffic=sets.outputs["traffic"],
                             prepared=prepared.outputs["prepared"])
        gate = register(data_dir=data_dir, candidate=evaluated.outputs["candidate"], test=sets.outputs["test"])
        rollout = deploy(data_dir=data_dir, decision=gate.outputs["decision"])
        if on_cluster:
            for task in (prepared, store, sets, trained, evaluated, gate, rollout):
                _cluster_pod(task)
        return rollout.output

    return fraud_training


def _cluster_pod(task: dsl.PipelineTask) -> None:
    """The step's pod on a cluster: settings from the ConfigMaps, passwords from the Secrets, the labels."""
    from kfp import kubernetes

    for name, keys in CLUSTER_CONFIG_MAPS.items():
        kubernetes.use_config_map_as_env(task, config_map_name=name, config_map_key_to_env={key: key for key in keys})
    for name, keys in CLUSTER_SECRETS.items():
        kubernetes.use_secret_as_env(task, secret_name=name, secret_key_to_env=keys)
    for key, value in CLUSTER_POD_LABELS.items():
        kubernetes.add_pod_label(task, label_key=key, label_value=value)


def compile_pipeline(image: str, path: Path = COMPILED) -> Path:
    """Write the pipeline's KFP IR YAML, for KFP or OpenShift AI Data Science Pipelines (a cluster's step pods)."""
    compiler.Compiler().compile(build_pipeline(image, on_cluster=True), package_path=str(path))
    return path


def run_locally(data_dir: Path, users: int, run_id: str, log_path: Path | None = None,
                labelled_window_days: float = 0.0) -> str:
    """Run the whole pipeline with kfp.local's SubprocessRunner in this virtualenv; return the deploy message.

    With ``log_path``, everything the runner and the step processes print goes there instead of the terminal.
    """
    import os
    from contextlib import ExitStack

    from kfp import local

    from training_pipeline.steps import RUN_ID_ENV

    os.environ[RUN_ID_ENV] = run_id  # the step processes inherit it and tag their timings with it
    with ExitStack() as stack:
        if log_path is not None:
            stack.enter_context(_output_to(log_path))
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(data_dir / "pipeline" / "kfp"),
                   raise_on_error=True)
        task = build_pipeline("local")(data_dir=str(data_dir), users=users, labelled_window_days=labelled_window_days)
        return task.output


def _output_to(log_path: Path):
    """Point file descriptors 1 and 2 (and so every child process's output) at ``log_path`` for a while."""
    import os
    import sys
    from contextlib import contextmanager

    @contextmanager
    def redirected():
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with log_path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])

    return redirected()
