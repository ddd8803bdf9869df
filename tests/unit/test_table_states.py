"""`RocksDBTableStates` on real RocksDB files: what it writes, what it reads, and when its kept states are trusted."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import orjson
import rocksdict

from stream_scorer.app import RocksDBTableStates, SentBatch, partition_for

PARTITIONS = 6


class _Store:
    """What the states read of Faust's RocksDB store: a DB per partition, and the key of its changelog offset."""

    offset_key = b"__faust\0offset__"

    def __init__(self, root: Path) -> None:
        self.root, self.dbs = root, {}

    def _db_for_partition(self, partition: int) -> rocksdict.Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = rocksdict.Rdict(str(self.root / str(partition)), options=rocksdict.Options(raw_mode=True))
        return self.dbs[partition]


def _sent(user: str, state: dict, offset: int) -> SentBatch:
    delivered: Future = Future()
    delivered.set_result(SimpleNamespace(offset=offset))
    key = user.encode()
    return SentBatch(partition_for(key, list(range(PARTITIONS))), [(key, orjson.dumps(state), [])], delivered)


def test_states_written_in_this_generation_are_read_from_memory_and_a_rebalance_reads_the_disk(tmp_path: Path) -> None:
    store = _Store(tmp_path)
    app = SimpleNamespace(consumer_generation_id=1)
    states = RocksDBTableStates(SimpleNamespace(data=store, partitions=PARTITIONS), app, cached_users=10)
    mine = {"count": 1, "merchants": ["m1"]}
    states.keep({"user_1": mine}, [_sent("user_1", mine, offset=41)])
    partition = partition_for(b"user_1", list(range(PARTITIONS)))
    db = store._db_for_partition(partition)
    assert orjson.loads(db[b"user_1"]) == mine and db[store.offset_key] == b"41"
    assert states.get_many(["user_1", "user_2"]) == {"user_1": mine, "user_2": None}

    # Meanwhile another worker owned the partition: Faust's recovery wrote its newer state to the disk.
    db[b"user_1"] = orjson.dumps({"count": 5, "merchants": ["m1", "m2"]})
    app.consumer_generation_id = 2  # the rebalance that handed the partition back
    assert states.get("user_1") == {"count": 5, "merchants": ["m1", "m2"]}
