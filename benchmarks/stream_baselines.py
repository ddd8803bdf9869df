"""The baselines `fraud bench stream` measures beside the real worker.

- ``raw``: aiokafka alone: `getmany` batches, each value decoded and encoded again
  with orjson, sent a partition batch at a time (acks=all), offsets committed after
  the sends: the limit of the Kafka client in Python on this machine;
- ``quix``: the same pass-through in quixstreams (JSON in, JSON out), the peer framework;
- ``passthrough``: decodes each transaction and re-produces it, in the worker's
  micro-batches and through the worker's send path: the ceiling of Faust + Kafka
  on this machine.

Every pass-through keeps the input's timestamp in a header, so latency is measured
from the original event.
- ``per-event``: the seed's design: for every event one Feast online read and
  one single-row predictor call, then a score event.

Run as ``python -m benchmarks.stream_baselines raw|quix|passthrough|per-event`` with the
same FRAUD_* settings as the worker (topics, app id, predictor, data dir).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import faust
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fraud.events import Score, Transaction, decode, encode
from fraud.features import FEATURE_NAMES
from fraud.settings import Settings, load_settings
from stream_scorer.app import faust_broker_options, queue_partition_batches, send_batches
from stream_scorer.feast_io import FeastGateway


_BATCH_WINDOW_S = 0.05  # how long Faust's take_events waits to fill a batch, as the worker did before it took fetches whole


def _app(settings: Settings) -> tuple[faust.App, faust.types.TopicT, faust.types.TopicT]:
    app = faust.App(settings.scorer_app_id, **faust_broker_options(settings), store="memory://", web_enabled=False,
                    datadir=str(settings.data_dir / "worker" / settings.scorer_app_id),
                    consumer_auto_offset_reset="earliest", producer_acks=-1, producer_linger_ms=0,
                    producer_max_batch_size=settings.scorer_producer_batch_bytes)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw", "internal": False}
    return app, app.topic(settings.topic_transactions, **raw), app.topic(settings.topic_scores, **raw)


def passthrough(settings: Settings) -> faust.App:
    app, source, sink = _app(settings)

    @app.agent(source)
    async def forward(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.scorer_batch_size, within=_BATCH_WINDOW_S):
            forward = []
            for event in events:
                decode(event.message.value, Transaction)
                # Headers carry the input's timestamp, so latency counts from the original event.
                forward.append((event.message.key, event.message.value,
                                [("origin-timestamp", repr(event.message.timestamp).encode())]))
            await asyncio.gather(*await send_batches(app, sink.get_topic_name(), forward))  # the worker's send path

    return app


def _origin(timestamp_ms: int) -> list[tuple[str, bytes]]:
    return [("origin-timestamp", repr(timestamp_ms / 1000).encode())]


async def raw_passthrough(settings: Settings) -> None:
    """aiokafka alone: fetch in batches, orjson decode and encode, send per partition batch, commit after the acks."""
    consumer = AIOKafkaConsumer(settings.topic_transactions, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=settings.scorer_app_id, auto_offset_reset="earliest", enable_auto_commit=False)
    # The worker's batch size: at aiokafka's 16 KiB a fetch's output takes many requests one after the other.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=0,
                                max_batch_size=settings.scorer_producer_batch_bytes)
    await consumer.start()
    await producer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=100)  # whatever has arrived, as Faust and quixstreams fetch
            out = [(r.key, orjson.dumps(orjson.loads(r.value)), _origin(r.timestamp))
                   for records in fetched.values() for r in records]
            if out:
                await asyncio.gather(*(b.delivery for b in await queue_partition_batches(producer, settings.topic_scores, out)))
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def quix_passthrough(settings: Settings) -> None:
    """quixstreams: JSON in, JSON out, at-least-once, no state."""
    from quixstreams import Application

    app = Application(broker_address=settings.kafka_bootstrap, consumer_group=settings.scorer_app_id,
                      auto_offset_reset="earliest", use_changelog_topics=False, auto_create_topics=False,
                      state_dir=str(settings.data_dir / "worker" / settings.scorer_app_id / "quix"),
                      producer_extra_config={"acks": "all"})
    source = app.topic(settings.topic_transactions, value_deserializer="json")
    sink = app.topic(settings.topic_scores, value_serializer="json")
    frame = app.dataframe(source).set_headers(lambda value, key, timestamp, headers: _origin(timestamp))
    frame.to_topic(sink)
    app.run()


def per_event(settings: Settings) -> faust.App:
    app, source, sink = _app(settings)
    feast = FeastGateway(settings)
    url = f"{settings.predictor_url}/v2/models/{settings.model_name}/infer"
    client = httpx.AsyncClient(timeout=settings.predictor_timeout_s)
    wanted = [f"user_activity:{name}" for name in FEATURE_NAMES]

    def read(user_id: str) -> list[float]:
        values = feast._open().get_online_features(features=wanted, entity_rows=[{"user_id": user_id}]).to_dict()
        return [float(values[name][0] or 0.0) for name in FEATURE_NAMES]

    @app.agent(source)
    async def score_each(stream: faust.StreamT) -> None:
        async for event in stream.events():
            transaction = decode(event.message.value, Transaction)
            row = await asyncio.get_running_loop().run_in_executor(feast._thread, read, transaction.user_id)
            answer = (await client.post(url, json={"inputs": [
                {"name": "features", "shape": [1, len(row)], "datatype": "FP32", "data": row}]})).json()
            probability = min(max(float(answer["outputs"][0]["data"][0]), 0.0), 1.0)
            threshold = float(answer["parameters"]["threshold"])
            scored_at = datetime.now(UTC)
            score = Score(transaction_id=transaction.transaction_id, user_id=transaction.user_id,
                          event_time=transaction.event_time, score=probability,
                          decision="fraud" if probability >= threshold else "legit", threshold=threshold,
                          model_name=settings.model_name, model_version=str(answer["model_version"]), scored_at=scored_at,
                          latency_ms=max(0.0, scored_at.timestamp() * 1000 - event.message.timestamp * 1000),
                          features=dict(zip(FEATURE_NAMES, row, strict=True)))
            key, value, headers = encode(score, settings.scorer_source)
            await sink.send(key=key, value=value, headers=headers)

    return app


if __name__ == "__main__":
    builders = {"passthrough": passthrough, "per-event": per_event}
    plain = {"raw": lambda s: asyncio.run(raw_passthrough(s)), "quix": quix_passthrough}
    if len(sys.argv) != 2 or sys.argv[1] not in builders.keys() | plain.keys():
        sys.exit(f"usage: python -m benchmarks.stream_baselines {'|'.join([*plain, *builders])}")
    settings = load_settings()
    (settings.data_dir / "worker" / settings.scorer_app_id).mkdir(parents=True, exist_ok=True)
    if sys.argv[1] in plain:
        sys.exit(plain[sys.argv[1]](settings))
    faust.Worker(builders[sys.argv[1]](settings), loglevel="warning").execute_from_commandline()
