"""A fraud model as served: one ONNX graph (scaling inside), its feature names and threshold in its metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fraud.errors import FraudError


class OnnxFraudModel:
    """Scores [N, F] float32 rows of raw feature values with onnxruntime."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # small MLP: threads cost more than they save, and the host has 2 cores
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise FraudError(f"{path}: expected one input tensor, found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.output_names = [self.session.get_outputs()[0].name]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.feature_names: list[str] = json.loads(self.metadata.get("feature_names", "[]"))
        self.threshold = float(self.metadata.get("threshold", "0.5"))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Fraud probability per row, float32, shape [N]."""
        return self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(rows, dtype=np.float32)})[0].reshape(-1)

    def describe(self) -> dict[str, Any]:
        """Feature names, threshold and the rest of the metadata, decoded."""
        decoded: dict[str, Any] = {}
        for key, value in self.metadata.items():
            try:
                decoded[key] = json.loads(value)
            except json.JSONDecodeError:
                decoded[key] = value
        return decoded


def write_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Add ``metadata`` (JSON-encoded values) to an ONNX file's metadata_props, in place."""
    import onnx

    model = onnx.load(str(path))
    existing = {prop.key: prop for prop in model.metadata_props}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            model.metadata_props.add(key=key, value=text)
    onnx.save(model, str(path))
