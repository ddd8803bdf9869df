"""How `build_app` configures Faust from Settings."""

from __future__ import annotations

from fraud.settings import Settings
from stream_scorer.app import build_app


def test_a_group_instance_id_reaches_the_kafka_consumer_for_static_membership(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, scorer_group_instance_id="fraud-worker-7d9f-x2")
    app = build_app(settings).app
    assert app.conf.consumer_group_instance_id == "fraud-worker-7d9f-x2"
    assert build_app(Settings(data_dir=tmp_path / "b")).app.conf.consumer_group_instance_id is None


def test_the_dependencies_begin_opening_as_the_app_starts_not_after_the_tables_recovery(tmp_path) -> None:
    """Faust starts an app's tasks only after table recovery; the Feast store must not wait for it."""
    import asyncio

    app = build_app(Settings(data_dir=tmp_path, scorer_table_store="memory")).app  # no disk to fill: no broker
    opened = []

    async def open_dependencies() -> None:
        opened.append("began")
        await asyncio.sleep(0.01)
        opened.append("open")

    app.open_dependencies = open_dependencies

    async def start_then_wait() -> None:
        await app.on_first_start()  # what Faust runs first, before the consumer joins and the table recovers
        await asyncio.sleep(0)
        assert opened == ["began"] and not app.tables.recovery.completed.is_set()
        await app.dependencies_opened()
        await app.dependencies_opened()  # opened once, however often it is waited for

    asyncio.run(start_then_wait())
    assert opened == ["began", "open"]


def test_the_rocksdb_table_reads_many_users_at_once_each_from_its_partition_s_db(tmp_path) -> None:
    import orjson
    from aiokafka.partitioner import DefaultPartitioner

    app = build_app(Settings(_env_file=None, data_dir=tmp_path, scorer_table_store="rocksdb"))
    states = app.scorer.state
    stored = {f"user_{n}": {"count": n} for n in range(40)}
    for user_id, state in stored.items():
        key = user_id.encode()
        partition = DefaultPartitioner()(key, list(range(6)), list(range(6)))  # the producers' murmur2
        states._db(partition)[key] = orjson.dumps(state)

    wanted = [*stored, "user_unknown"]
    assert states.get_many(wanted) == {**stored, "user_unknown": None}
    assert {user_id: states.get(user_id) for user_id in wanted} == {**stored, "user_unknown": None}


def test_the_worker_s_kafka_consumer_asks_the_broker_to_hold_an_empty_fetch_100_ms_not_faust_s_1_5_s(tmp_path) -> None:
    """A long-held fetch of partitions where nothing comes held the input back for 1.5 s (`ShortPollConsumerThread`)."""
    import asyncio

    import aiokafka

    from stream_scorer.bulk_input import FETCH_MAX_WAIT_MS

    async def created() -> tuple[int, int]:
        app = build_app(Settings(data_dir=tmp_path, scorer_table_store="memory")).app
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        plain = aiokafka.AIOKafkaConsumer(fetch_max_wait_ms=321)  # where aiokafka keeps the value `start()` reads
        return consumer._fetch_max_wait_ms, plain._fetch_max_wait_ms

    ours, plain = asyncio.run(created())
    assert (ours, plain) == (FETCH_MAX_WAIT_MS, 321) and FETCH_MAX_WAIT_MS == 100
