"""A minimal Faust app for the compatibility test: decode transactions, count per user, forward ids.

Run by `test_faust_compat.py` as a real `faust worker` process against the test broker.
"""

from __future__ import annotations

import os

import faust

from fraud.events import Transaction, decode

app = faust.App(
    os.environ.get("PROBE_APP_ID", "fraud-faust-probe"),
    broker=f"kafka://{os.environ.get('PROBE_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    datadir=os.environ.get("PROBE_DATADIR", "/tmp/fraud-faust-probe"),
    topic_partitions=3,
    web_enabled=False,
)
source = app.topic(os.environ.get("PROBE_IN", "probe-in"), key_type=bytes, value_type=bytes, value_serializer="raw")
sink = app.topic(os.environ.get("PROBE_OUT", "probe-out"), key_type=bytes, value_type=bytes, value_serializer="raw")
per_user = app.Table("per-user", default=int)  # changelog-backed: exercises topic creation and the changelog


@app.agent(source)
async def forward(stream: faust.StreamT) -> None:
    async for event in stream.events():
        transaction = decode(event.value, Transaction)
        per_user[transaction.user_id] += 1
        await sink.send(key=event.key, value=f"{transaction.transaction_id}:{per_user[transaction.user_id]}".encode())
