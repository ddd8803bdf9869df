"""`fraud bench stream`'s time budget: each py-spy sample goes to the part its innermost known frame names."""

from __future__ import annotations

import pytest

from benchmarks.stream import PROFILE_RATE, budget_from_profile

LOOP = "<module> (stream_scorer/__main__.py:3);run_until_complete (asyncio/base_events.py:640);_run (asyncio/events.py:80)"


@pytest.mark.parametrize(("frames", "part"), [
    ("Service.wait_first (mode/services.py:777);_wait (asyncio/tasks.py:513)", "faust"),
    ("BatchScorer.process (stream_scorer/scorer.py:130);split_valid (stream_scorer/batch.py:56);"
     "_plain_transaction (fraud/events.py:400)", "decode"),
    ("BatchScorer.process (stream_scorer/scorer.py:150);TableStates.save (stream_scorer/app.py:357);"
     "send_partition_batches (stream_scorer/app.py:82);BatchBuilder.append (aiokafka/producer/message_accumulator.py:77)",
     "kafka client"),
    ("BatchScorer.process (stream_scorer/scorer.py:136);RocksDBTableStates.get (stream_scorer/app.py:382)", "state"),
    ("BatchScorer.process (stream_scorer/scorer.py:143);score_messages (fraud/events.py:488)", "encode"),
    ("collect (gc)", "other"),
])
def test_a_sample_goes_to_its_innermost_known_part(frames: str, part: str) -> None:
    budget = budget_from_profile(f"{LOOP};{frames} {PROFILE_RATE * 2}\n", events=4)
    assert budget[part] == pytest.approx(0.5e6) and sum(budget.values()) == pytest.approx(0.5e6)
