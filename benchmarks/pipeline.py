"""`fraud bench pipeline`: per-step and total wall time of `fraud pipeline run`, from a clean data dir, per size.

Each size is a separate `fraud pipeline run` process on a fresh data dir, so
data generation is included in `prep`. There is no outside baseline for a whole
pipeline; the per-step split shows where the time goes as the data grows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

STEPS = ("prep", "features", "training_data", "train", "evaluate", "register", "deploy")


def run(sizes: tuple[int, ...], console: Console | None = None) -> dict[int, dict[str, float]]:
    """Run the pipeline once per size; print a table of step timings."""
    console = console or Console()
    results: dict[int, dict[str, float]] = {}
    for users in sizes:
        with tempfile.TemporaryDirectory(prefix=f"fraud-bench-pipeline-{users}-") as scratch:
            env = {**os.environ, "FRAUD_DATA_DIR": scratch}
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "fraud.cli", "pipeline", "run", "--users", str(users)],
                                  env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"pipeline run at {users} users failed: {done.stderr.strip()[-2000:]}")
            timings = [json.loads(line) for line in (Path(scratch) / "pipeline" / "timings.jsonl").read_text().splitlines()]
            results[users] = {t["step"]: t["seconds"] for t in timings} | {"wall": wall}
            decision = json.loads((Path(scratch) / "pipeline" / "last_decision.json").read_text())
            registry = json.loads((Path(scratch) / "registry" / "registry.json").read_text())
            metrics = registry["models"]["fraud-detection"]["versions"][-1]["metadata"]["metrics"]
            results[users] |= {"pr_auc": metrics["pr_auc"], "baseline_pr_auc": metrics["baseline_pr_auc"]}
            console.log(f"{users:,} users: {wall:.0f}s wall; {decision['reason']}; test PR-AUC {metrics['pr_auc']:.4f} "
                        f"vs HistGradientBoosting {metrics['baseline_pr_auc']:.4f} "
                        f"(ratio {metrics['pr_auc'] / metrics['baseline_pr_auc']:.3f}, target >= 0.98)")
    table = Table(title="local pipeline run (kfp.local SubprocessRunner, 2 cores), seconds")
    table.add_column("step")
    for users in sizes:
        table.add_column(f"{users:,} users", justify="right")
    for step in (*STEPS, "wall"):
        table.add_row(step if step != "wall" else "total wall (incl. KFP overhead)",
                      *(f"{results[users].get(step, float('nan')):.1f}" for users in sizes))
    console.print(table)
    return results
