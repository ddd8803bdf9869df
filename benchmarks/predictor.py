"""`fraud bench predictor`: requests/s and latency of the predictor beside a zero model on the same server build.

Load comes from wrk (Debian's `wrk`), 16 connections, a bounded duration, all on
127.0.0.1. Contenders: the real MLP (same architecture as training, exported the
same way; its weights do not change the cost) and `ZeroModel`, which returns
zeros without computing, served by the same `predictor.server`. Each is measured
with single-row V2 JSON requests (what curl sends) and with 1,000-row V2
batches in the binary tensor extension (what a program sends), alternating rounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from fraud.features import FEATURE_NAMES
from fraud.onnx_model import write_metadata
from fraud.registry import EmbeddedRegistry
from fraud.settings import Settings
from fraud.storage import LocalArtifactStore

CONNECTIONS = 16
# Server on core 0, wrk on core 1 (when the machine has two and taskset exists): the two
# then do not take turns on one core, which made the single-row ratio swing by +-3%.
_PINNED = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
_PIN_SERVER = ["taskset", "-c", "0"] if _PINNED else []
_PIN_CLIENT = ["taskset", "-c", "1"] if _PINNED else []


def _mlp_model(data_dir: Path) -> None:
    """Register the training architecture, exported with tf2onnx, as production in ``data_dir``."""
    from training_pipeline.train import build_model, export_onnx

    rows = np.random.default_rng(0).lognormal(0, 1, (2000, len(FEATURE_NAMES))).astype(np.float32)
    path = export_onnx(build_model(rows, seed=0), data_dir / "mlp.onnx")
    write_metadata(path, {"feature_names": list(FEATURE_NAMES), "threshold": 0.5})
    settings = Settings(data_dir=data_dir, _env_file=None)
    uri = LocalArtifactStore(data_dir / "artifacts").put(path, "bench/mlp.onnx")
    registry = EmbeddedRegistry(data_dir / "registry" / "registry.json")
    registry.promote(settings.model_name, registry.register(settings.model_name, uri, "onnx", "17", {}).version)


def _serve(data_dir: Path, port: int, zero: bool, pin: bool = True) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {
        "FRAUD_DATA_DIR": str(data_dir), "FRAUD_PREDICTOR_PORT": str(port)}
    command = [*(_PIN_SERVER if pin else []), sys.executable, "-m", "predictor", *(["--zero-model"] if zero else [])]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"predictor on port {port} did not become ready")


def _body(rows: int, root: Path) -> tuple[Path, dict[str, str]]:
    """A V2 request of ``rows`` rows: JSON for one row (the curl case), the binary tensor extension for batches."""
    data = np.random.default_rng(rows).lognormal(0, 1, (rows, len(FEATURE_NAMES))).astype(np.float32)
    path = root / f"body-{rows}.bin"
    tensor = {"name": "features", "shape": [rows, len(FEATURE_NAMES)], "datatype": "FP32"}
    if rows == 1:
        path.write_text(json.dumps({"inputs": [tensor | {"data": data.reshape(-1).tolist()}]}))
        return path, {"Content-Type": "application/json"}
    header = json.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": data.nbytes}}],
                         "outputs": [{"name": "score", "parameters": {"binary_data": True}}]}).encode()
    path.write_bytes(header + data.tobytes())
    return path, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}


def _wrk(url: str, body: tuple[Path, dict[str, str]], seconds: int) -> dict[str, float]:
    body_file, headers = body
    script = body_file.with_suffix(".lua")
    script.write_text('wrk.method = "POST"\n' + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
                      + f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n')
    out = subprocess.run([*_PIN_CLIENT, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50%"), "p99_ms": ms("99%")}


def run(seconds: int = 10, rounds: int = 2, console: Console | None = None) -> dict[str, dict[str, float]]:
    """Measure both models at both request sizes; print the table; return medians."""
    console = console or Console()
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    from fraud.local_stack.process import free_port

    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fraud-bench-predictor-") as scratch:
        root = Path(scratch)
        _mlp_model(root)
        bodies = {rows: _body(rows, root) for rows in (1, 1000)}
        servers = {"mlp": (free_port(), False), "zero": (free_port(), True)}
        processes = {name: _serve(root, port, zero) for name, (port, zero) in servers.items()}
        try:
            for round_number in range(rounds):
                for rows in (1, 1000):
                    for name, (port, _) in servers.items():
                        url = f"http://127.0.0.1:{port}/v2/models/fraud-detection/infer"
                        figures = _wrk(url, bodies[rows], seconds)
                        results.setdefault(f"{name}-{rows}", []).append(figures)
                        console.log(f"round {round_number + 1}: {name} model, {rows}-row requests: "
                                    f"{figures['rps']:,.0f} req/s, p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms")
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=30)
    medians = {key: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for key, runs in results.items()}
    table = Table(title=f"predictor benchmark: wrk, {CONNECTIONS} connections, {seconds}s x {rounds} rounds, 127.0.0.1")
    for column in ("model", "rows/request", "req/s", "rows/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for key, m in medians.items():
        name, rows = key.split("-")
        table.add_row(name, rows, f"{m['rps']:,.0f}", f"{m['rps'] * int(rows):,.0f}", f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}")
    console.print(table)
    single_ratio = medians["mlp-1"]["rps"] / medians["zero-1"]["rps"]
    console.print(f"single-row throughput, MLP / zero model: {single_ratio:.2f} (target >= 0.85); "
                  f"batch rows/s with the MLP: {medians['mlp-1000']['rps'] * 1000:,.0f} (target >= 1,000,000)")
    return medians
