"""Pipeline step `train`: a Keras MLP with its preprocessing inside, exported to ONNX with tf2onnx.

The graph takes raw feature values, [N, 14] float32, and does its own scaling:
a signed log (sign(x) * log(1 + |x|), which tames amounts and distances and
keeps the -1 "no history" marker distinct), then a Normalization layer adapted
on the training split only. Serving therefore feeds exactly what training saw.

Shapes: features [N, 14] -> signed log [N, 14] -> normalised [N, 14]
-> Dense 64 -> Dense 32 -> Dense 16 (ReLU, BatchNorm, Dropout) -> sigmoid [N, 1].
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.features import FEATURE_NAMES
from fraud.drift import REFERENCE_KEY, SCORE, Reference
from fraud.onnx_model import OnnxFraudModel, write_metadata
from fraud.settings import Settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
log = logging.getLogger(__name__)
INPUT_NAME = "features"
OUTPUT_NAME = "score"
PREDICT_BATCH = 8192  # rows per batch when Keras only predicts


@dataclass(frozen=True)
class TrainResult:
    """The exported model and what training measured."""

    onnx_path: Path
    epochs: int
    best_val_pr_auc: float
    max_parity_diff: float


def signed_log(x):  # -> tensor
    """sign(x) * log(1 + |x|): monotone, defined for negatives, near-linear around 0.

    Written with log(1 + .) rather than log1p, which tf2onnx cannot export.
    """
    import keras

    return keras.ops.sign(x) * keras.ops.log(1.0 + keras.ops.abs(x))


def build_model(train_features: np.ndarray, seed: int):  # -> keras.Model
    """The MLP; its Normalization layer is adapted here on the training split only."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(len(FEATURE_NAMES),), name=INPUT_NAME, dtype="float32")
    scaled = keras.layers.Lambda(signed_log, name="signed_log")(inputs)
    normalizer = keras.layers.Normalization(name="normalize")
    normalizer.adapt(signed_log(keras.ops.convert_to_tensor(train_features)))  # the same function the graph applies
    x = normalizer(scaled)
    for width in (64, 32, 16):
        x = keras.layers.Dense(width, activation="relu")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Dropout(0.1)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(x)
    model = keras.Model(inputs, outputs, name="fraud_mlp")
    # 16 batches per call into TensorFlow: the same updates, without a Python round trip per batch of this
    # small model (an epoch of 1,000,000 rows: about 2.3 s instead of 4 here).
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(curve="PR", name="pr_auc")], steps_per_execution=16)
    return model


def export_onnx(model, path: Path) -> Path:  # model: keras.Model
    """Export with tf2onnx and check the graph has exactly one input, the raw features."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    model.output_names = [OUTPUT_NAME]  # Keras 3 models otherwise name outputs keras_tensor_NN, which tf2onnx trips on
    signature = [tf.TensorSpec([None, len(FEATURE_NAMES)], tf.float32, name=INPUT_NAME)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(path))
    graph_inputs = [i.name for i in onnx.load(str(path)).graph.input]
    if graph_inputs != [INPUT_NAME]:
        raise RuntimeError(f"exported graph has inputs {graph_inputs}; expected only {INPUT_NAME!r}")
    return path


def train(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, settings: Settings, onnx_path: Path) -> TrainResult:
    """Fit on train (early stopping on valid PR-AUC), export, and assert ONNX == Keras on the whole test split."""
    import keras

    x_train, y_train = _xy(train)
    x_valid, y_valid = _xy(valid)
    positives = max(int(y_train.sum()), 1)
    # Fraud is ~1% of rows: weight it up, but by the square root of the imbalance so that
    # scores stay usable as probabilities; the threshold is tuned on valid anyway.
    class_weight = {0: 1.0, 1: float(np.sqrt((len(y_train) - positives) / positives))}
    model = build_model(x_train, settings.train_seed)
    stop = keras.callbacks.EarlyStopping(monitor="val_pr_auc", mode="max", patience=4, restore_best_weights=True)
    # Validation only predicts: in batches as large as the parity check's, not the training's small ones.
    history = model.fit(x_train, y_train, validation_data=(x_valid, y_valid), epochs=settings.train_epochs,
                        batch_size=settings.train_batch_size, validation_batch_size=PREDICT_BATCH, class_weight=class_weight,
                        callbacks=[stop], verbose=0)
    best = float(max(history.history["val_pr_auc"]))
    log.info("trained %d epochs, best valid PR-AUC %.4f", len(history.history["loss"]), best)

    export_onnx(model, onnx_path)
    x_test, _ = _xy(test)
    keras_scores = model.predict(x_test, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    onnx_scores = OnnxFraudModel(onnx_path).predict(x_test)
    max_diff = float(np.max(np.abs(keras_scores - onnx_scores))) if len(x_test) else 0.0
    if max_diff > 1e-5:
        raise RuntimeError(f"ONNX and Keras disagree by {max_diff:.2e} on the test split (limit 1e-5)")
    return TrainResult(onnx_path, len(history.history["loss"]), best, max_diff)


MIN_TRAFFIC_ROWS = 1_000  # fewer served transactions than this make too coarse a reference: the history is used


def save_drift_reference(onnx_path: Path, train_path: Path, valid_path: Path, traffic_path: Path | None = None) -> None:
    """`save_reference` on the traffic the model will serve, as well as it is known.

    After a retraining on served rows, that is the window's served traffic (every
    scored transaction, labelled or not), at least `MIN_TRAFFIC_ROWS` of them; else the
    Feast history of train (features) and valid (scores), without the labelled served
    rows, which are labelled by outcome (every fraud, some legit) and so not a sample.
    """
    from training_pipeline.training_data import history_rows

    traffic = pd.read_parquet(traffic_path) if traffic_path is not None and traffic_path.exists() else None
    if traffic is not None and len(traffic) >= MIN_TRAFFIC_ROWS:
        features = traffic[list(FEATURE_NAMES)].to_numpy(np.float32)
        save_reference(onnx_path, features, OnnxFraudModel(onnx_path).predict(features))
        return
    x_train, _ = _xy(history_rows(train_path))
    x_valid, _ = _xy(history_rows(valid_path))
    save_reference(onnx_path, x_train, OnnxFraudModel(onnx_path).predict(x_valid))


def save_reference(onnx_path: Path, train_features: np.ndarray, valid_scores: np.ndarray) -> None:
    """The drift reference, inside the ONNX file: each feature as trained on, and the scores on held-out valid rows.

    Scores on the rows the model was fitted to would be overconfident; valid is the
    nearest thing to the traffic it will serve. The live monitor compares with these (PSI).
    """
    columns = {name: train_features[:, i] for i, name in enumerate(FEATURE_NAMES)} | {SCORE: valid_scores}
    write_metadata(onnx_path, {REFERENCE_KEY: Reference.from_samples(columns).model_dump_json()})


def _xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame[list(FEATURE_NAMES)].to_numpy(np.float32), frame["fraud"].to_numpy(np.float32)
