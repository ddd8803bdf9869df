"""`fraud bench pipeline`: each step's wall time and peak memory in a `fraud pipeline run`, per size, with the PR-AUC.

Each size is a separate `fraud pipeline run` process on a fresh data dir, so
data generation is included in `prep`. Memory is the resident memory of the
whole process tree (the KFP runner, the step's process, its Spark JVM and
Python workers), sampled every 0.1 s; a step's peak is the largest sample
between its start and its end. There is no outside baseline for a whole
pipeline; the PR-AUC stands beside the evaluate step's, the tuned
HistGradientBoosting baseline trained and scored on the same splits.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.measure import Measurement, measure

STEPS = ("prep", "features", "training_data", "train", "evaluate", "register", "deploy")


@dataclass(frozen=True)
class StepFigures:
    """One step of one run: wall seconds and the process tree's peak resident GB."""

    seconds: float
    peak_gb: float


@dataclass(frozen=True)
class RunFigures:
    """One pipeline run at one size."""

    users: int
    steps: dict[str, StepFigures]
    wall_s: float
    peak_gb: float
    pr_auc: float
    baseline_pr_auc: float
    decision: str


def run(sizes: tuple[int, ...], console: Console | None = None) -> dict[int, RunFigures]:
    """Run the pipeline once per size; print a table of step timings and peaks, and the PR-AUCs."""
    console = console or Console()
    results: dict[int, RunFigures] = {}
    for users in sizes:
        with tempfile.TemporaryDirectory(prefix=f"fraud-bench-pipeline-{users}-") as scratch:
            measured = measure([sys.executable, "-m", "fraud.cli", "pipeline", "run", "--users", str(users)],
                               env={**os.environ, "FRAUD_DATA_DIR": scratch})
            results[users] = figures_of(users, Path(scratch), measured)
        figures = results[users]
        console.log(f"{users:,} users: {figures.wall_s:.0f}s wall, peak {figures.peak_gb:.2f} GB; {figures.decision}; "
                    f"test PR-AUC {figures.pr_auc:.4f} vs HistGradientBoosting {figures.baseline_pr_auc:.4f} "
                    f"(ratio {figures.pr_auc / figures.baseline_pr_auc:.3f}, target >= 0.98)")
        console.print(_table((users,), results))  # now: a long next size must not hide this one's figures
    if len(sizes) > 1:
        console.print(_table(sizes, results))
    return results


def figures_of(users: int, data_dir: Path, measured: Measurement) -> RunFigures:
    """A finished run's figures, from its timings, its decision, its registered metrics and the memory samples."""
    timings = [json.loads(line) for line in (data_dir / "pipeline" / "timings.jsonl").read_text().splitlines()]
    steps = {t["step"]: StepFigures(t["seconds"], measured.peak_between(t["started"], t["ended"]) / 1e9) for t in timings}
    decision = json.loads((data_dir / "pipeline" / "last_decision.json").read_text())
    registry = json.loads((data_dir / "registry" / "registry.json").read_text())
    metrics = registry["models"]["fraud-detection"]["versions"][-1]["metadata"]["metrics"]
    return RunFigures(users, steps, measured.seconds, measured.peak_gb, metrics["pr_auc"], metrics["baseline_pr_auc"],
                      decision["reason"])


def _table(sizes: tuple[int, ...], results: dict[int, RunFigures]) -> Table:
    """Seconds and peak GB per step and size, the totals, and the PR-AUCs."""
    table = Table(title="local pipeline run (kfp.local SubprocessRunner, 2 cores; peak = whole process tree)")
    table.add_column("step")
    for users in sizes:
        table.add_column(f"{users:,} users: s", justify="right")
        table.add_column("peak GB", justify="right")
    for step in STEPS:
        cells = []
        for users in sizes:
            figures = results[users].steps.get(step)
            cells += [f"{figures.seconds:.1f}", f"{figures.peak_gb:.2f}"] if figures else ["-", "-"]
        table.add_row(step, *cells)
    table.add_row("total (incl. KFP overhead)", *(cell for users in sizes
                                                  for cell in (f"{results[users].wall_s:.1f}", f"{results[users].peak_gb:.2f}")))
    table.add_row("test PR-AUC: model / baseline", *(cell for users in sizes for cell in (
        f"{results[users].pr_auc:.4f}", f"{results[users].baseline_pr_auc:.4f}")))
    return table
