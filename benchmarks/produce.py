"""`fraud bench produce`: events/s of `fraud produce` beside a raw kafka-python loop, in one run.

The baseline sends pre-serialised bytes with the same producer settings, so the
ratio is the price of everything `fraud produce` adds: generating events,
validating them, building CloudEvents and serialising. Contenders alternate
round by round so that a noisy neighbour hurts both alike; medians are reported.
"""

from __future__ import annotations

import statistics
import time
import uuid

from rich.console import Console
from rich.table import Table

from fraud.events import KafkaRecord
from fraud.local_stack.kafka import LocalKafka, create_topics, delete_topics
from fraud.settings import Settings
from producers.encoding import encode_chunks
from producers.publisher import make_producer, publish
from producers.sources import SyntheticSource


def raw_loop(settings: Settings, topic: str, messages: list[KafkaRecord]) -> float:
    """Events/s of a plain kafka-python send loop over ready (key, value, headers) records."""
    producer = make_producer(settings)
    try:
        started = time.perf_counter()
        for key, value, headers in messages:
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush()
        return len(messages) / (time.perf_counter() - started)
    finally:
        producer.close()


def fraud_produce(settings: Settings, topic: str, count: int, seed: int) -> float:
    """Events/s of the `fraud produce` path (synthetic source, encoder process, publisher)."""
    report = publish(SyntheticSource(count, seed=seed), settings, topic=topic)
    if report.failed or report.delivered != count:
        raise RuntimeError(f"fraud produce delivered {report.delivered}/{count}, {report.failed} failed")
    return report.events_per_second


def run(settings: Settings, count: int = 50_000, rounds: int = 3, console: Console | None = None) -> dict[str, float]:
    """Measure both contenders ``rounds`` times, print a table, return the medians and their ratio."""
    console = console or Console()
    LocalKafka(settings).start()
    topic = f"bench-produce-{uuid.uuid4().hex[:8]}"
    create_topics(settings, {topic: settings.partitions_transactions})
    messages = [m for chunk in encode_chunks(SyntheticSource(count, seed=0), settings.event_source) for m in chunk.messages]
    raw, ours = [], []
    try:
        for round_number in range(rounds):
            raw.append(raw_loop(settings, topic, messages))
            ours.append(fraud_produce(settings, topic, count, seed=round_number + 1))
            console.log(f"round {round_number + 1}/{rounds}: raw {raw[-1]:,.0f}/s, fraud produce {ours[-1]:,.0f}/s")
    finally:
        delete_topics(settings, [topic])
    result = {"raw_events_per_s": statistics.median(raw), "produce_events_per_s": statistics.median(ours)}
    # Each round's pair ran back to back, so its ratio is the least noisy figure; report their median.
    result["ratio"] = statistics.median(o / r for o, r in zip(ours, raw, strict=True))
    table = Table(title=f"produce benchmark: {count:,} events x {rounds} rounds, {len(messages[0][1])} B/event")
    table.add_column("contender")
    table.add_column("events/s (median)", justify="right")
    table.add_row("raw kafka-python loop, pre-serialised bytes", f"{result['raw_events_per_s']:,.0f}")
    table.add_row("fraud produce (generate + validate + CloudEvent + send)", f"{result['produce_events_per_s']:,.0f}")
    table.add_row("ratio fraud produce / raw (median of per-round ratios)", f"{result['ratio']:.2f}  (target >= 0.80)")
    console.print(table)
    return result


if __name__ == "__main__":
    from fraud.settings import load_settings

    run(load_settings())
