"""Seed the worker's user table from history: what a first deployment does instead of replaying years of events.

The table's changelog topic is emptied (deleted and created again, compacted),
then the state of each user after ``transactions`` (the same `fold_activity` state the
worker keeps) is written to it, keyed and partitioned as the worker writes it.
A worker (re)started afterwards recovers exactly that, so its history features
continue from the batch history instead of from zero. Seeding again resets the
table to the history (users only the stream had seen are forgotten). Stop the
worker first: a running one keeps its in-memory state.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from kafka import KafkaProducer

from fraud.events import Transaction
from fraud.features import TransactionColumns, fold_activity
from fraud.topics import recreate_topic
from fraud.settings import Settings
from stream_scorer.app import STATE_TABLE

log = logging.getLogger(__name__)


def changelog_topic(settings: Settings) -> str:
    """Faust's name for the user table's changelog topic."""
    return f"{settings.scorer_app_id}-{STATE_TABLE}-changelog"


def history_states(transactions_path: Path) -> dict[str, dict]:
    """Each user's state after all of ``transactions_path`` (Parquet with the Transaction columns)."""
    table = pq.read_table(transactions_path, columns=list(Transaction.model_fields)).sort_by(
        [("event_time", "ascending"), ("transaction_id", "ascending")])
    # The file is ours and validated: build fast, without validating again.
    transactions = [Transaction.model_construct(**row) for row in table.to_pylist()]
    return fold_activity(TransactionColumns.of(transactions), {}).states


def seed_state(settings: Settings, transactions_path: Path) -> int:
    """Write the users' history states to the changelog topic (stop the worker first); return how many users."""
    states = history_states(transactions_path)
    topic = changelog_topic(settings)
    recreate_topic(settings, topic, settings.partitions_transactions, {"cleanup.policy": "compact"})
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=20)
    try:
        for user_id, state in states.items():
            # The default partitioner (murmur2 of the key) is the one the worker's table uses (use_partitioner).
            producer.send(topic, key=user_id.encode(), value=orjson.dumps(state))
        producer.flush()
    finally:
        producer.close()
    log.info("seeded %d users' history into %s", len(states), topic)
    return len(states)
