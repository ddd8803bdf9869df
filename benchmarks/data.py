"""`fraud bench data`: generator and Spark prep timings and peak memory, each beside a baseline.

- generator: ours (vectorised numpy/Arrow) against a straightforward per-user
  Python loop that builds the same columns row by row, both at the same small
  size; then ours alone at the target sizes (100k and 1M users).
- prep: Spark's window functions against the stream path's incremental state
  (the other implementation of the same features) on the same data.

Every contender runs in its own process, so its peak memory is its own.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import Measurement, measure

ME = [sys.executable, "-m", "benchmarks.data"]
worker = typer.Typer(add_completion=False)


# --- the contenders, each run as `python -m benchmarks.data <name> ...` ------------------------------
@worker.command()
def generator(users: int, out: Path) -> None:
    """Ours: fraud.datagen."""
    from fraud.datagen import GenerationSpec, generate

    result = generate(GenerationSpec(users=users, seed=1), out)
    print(json.dumps({"transactions": result.transactions}))


@worker.command()
def loop_generator(users: int, out: Path) -> None:
    """Baseline: one Python loop iteration per user and per transaction, appended to lists, then pandas."""
    import random

    import pandas as pd

    rng = random.Random(1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for user in range(users):
        home_lat, home_lon = rng.uniform(36, 58), rng.uniform(-9, 28)
        typical, online_share = rng.lognormvariate(3.7, 0.6), rng.betavariate(2, 5)
        for _ in range(rng.randint(1, 34)):
            online = rng.random() < online_share
            chip = not online and rng.random() < 0.85
            rows.append({
                "transaction_id": f"tx-{len(rows):010d}", "user_id": f"user_{user}",
                "event_time": start + timedelta(seconds=rng.random() * 30 * 86400),
                "amount": round(typical * rng.lognormvariate(0, 0.6), 2), "merchant_id": f"merchant_{rng.randrange(50000)}",
                "merchant_category": "grocery", "latitude": home_lat + rng.gauss(0, 0.05),
                "longitude": home_lon + rng.gauss(0, 0.05), "used_chip": chip,
                "used_pin_number": chip and rng.random() < 0.6, "online_order": online, "fraud": rng.random() < 0.01,
            })
    frame = pd.DataFrame(rows).sort_values("event_time")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "transactions.parquet")
    print(json.dumps({"transactions": len(frame)}))


@worker.command()
def spark_prep(data_dir: Path) -> None:
    """Ours: the Spark prep step (session start included)."""
    from fraud.settings import Settings
    from training_pipeline.prep import prepare

    started = time.perf_counter()
    result = prepare(Settings(data_dir=data_dir, _env_file=None))
    print(json.dumps({"rows": sum(result.rows_per_split.values()), "seconds": time.perf_counter() - started}))


@worker.command()
def stream_prep(data_dir: Path) -> None:
    """Baseline: the stream path's incremental features over the same transactions, in micro-batches of 500."""
    import pandas as pd
    import pyarrow.parquet as pq

    from fraud.events import Transaction
    from fraud.features import UserProfile, stream_features

    profiles = {r.user_id: UserProfile(r.home_latitude, r.home_longitude, r.median_purchase_amount)
                for r in pd.read_parquet(data_dir / "features" / "user_profile.parquet").itertuples()}
    table = pq.read_table(data_dir / "raw" / "transactions.parquet").drop_columns(["fraud"])
    states: dict[str, dict] = {}
    rows = 0
    for batch in table.to_batches(max_chunksize=500):
        events = [Transaction.model_validate(row) for row in batch.to_pylist()]
        states.update(stream_features(events, states, profiles).states)
        rows += len(events)
    print(json.dumps({"rows": rows}))


# --- the benchmark ------------------------------------------------------------------------------------
def run(small_users: int = 100_000, sizes: tuple[int, ...] = (100_000, 1_000_000), prep_users: int = 100_000,
        console: Console | None = None) -> dict[str, float]:
    """Measure everything, print one table, return the figures."""
    console = console or Console()
    figures: dict[str, float] = {}
    table = Table(title="data benchmark (2 cores; peak memory = whole process tree)")
    for column in ("what", "users", "rows", "wall s", "peak GB", "vs baseline"):
        table.add_column(column, justify="left" if column == "what" else "right")

    def row(label: str, users: int, m: Measurement, versus: str = "") -> None:
        rows = json.loads(m.output.strip().splitlines()[-1]).get("transactions") or json.loads(m.output.strip().splitlines()[-1]).get("rows")
        table.add_row(label, f"{users:,}", f"{rows:,}", f"{m.seconds:.1f}", f"{m.peak_gb:.2f}", versus)
        console.log(f"{label} at {users:,} users: {m.seconds:.1f}s, {m.peak_gb:.2f} GB")

    with tempfile.TemporaryDirectory(prefix="fraud-bench-data-") as scratch:
        root = Path(scratch)
        loop = measure([*ME, "loop-generator", str(small_users), str(root / "loop")])
        ours = measure([*ME, "generator", str(small_users), str(root / "small")])
        figures["generator_speedup_vs_loop"] = loop.seconds / ours.seconds
        row("generator: per-row Python loop (baseline)", small_users, loop)
        row("generator: fraud data generate", small_users, ours, f"{figures['generator_speedup_vs_loop']:.2f}x its speed")
        for users in sizes:
            m = measure([*ME, "generator", str(users), str(root / f"gen{users}" / "raw")])
            figures[f"generator_{users}_s"], figures[f"generator_{users}_gb"] = m.seconds, m.peak_gb
            target = "target <= 60 s, <= 6 GB" if users == 1_000_000 else ""
            row("generator: fraud data generate", users, m, target)

        for users in sorted({prep_users, *sizes}):
            data_dir = root / f"gen{users}"
            if not (data_dir / "raw").exists():
                measure([*ME, "generator", str(users), str(data_dir / "raw")])
            spark = measure([*ME, "spark-prep", str(data_dir)])
            figures[f"prep_{users}_s"], figures[f"prep_{users}_gb"] = spark.seconds, spark.peak_gb
            if users == prep_users:
                stream = measure([*ME, "stream-prep", str(data_dir)])
                figures["prep_speedup_vs_stream_path"] = stream.seconds / spark.seconds
                row("features: stream path, one event at a time (baseline)", users, stream)
                row("features: Spark prep (session start included)", users, spark,
                    f"{figures['prep_speedup_vs_stream_path']:.2f}x its speed")
            else:
                row("features: Spark prep (session start included)", users, spark)
    console.print(table)
    return figures


if __name__ == "__main__":
    worker()
