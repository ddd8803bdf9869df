"""The chaos accounting on fabricated outcomes: lost and differing duplicates are caught, measurements are not content."""

from __future__ import annotations

from benchmarks.chaos import account


def _score(transaction_id: str, score: float = 0.1, scored_at: str = "2026-01-01T00:00:00Z", latency_ms: float = 5.0,
           **features: float) -> dict:
    return {"transaction_id": transaction_id, "user_id": "user_1", "event_time": "2026-01-01T00:00:00Z", "score": score,
            "decision": "legit", "threshold": 0.5, "model_name": "fraud-detection", "model_version": "1",
            "scored_at": scored_at, "latency_ms": latency_ms, "features": {"amount": 12.5, **features}}


def test_every_outcome_accounted_for_and_nothing_lost() -> None:
    result = account(["a", "b", "c"], [_score("a"), _score("b")], [("c", "amount: Field required")])
    assert (result.published, result.scored, result.dead_lettered, result.lost) == (3, 2, 1, 0)
    assert (result.duplicated_identical, result.duplicated_different) == (0, 0)
    assert result.ok


def test_a_transaction_without_any_outcome_is_lost() -> None:
    result = account(["a", "b", "c"], [_score("a")], [("b", "bad")])
    assert result.lost == 1 and result.lost_ids == ("c",)
    assert not result.ok


def test_a_duplicate_differing_only_in_when_and_how_late_it_was_scored_is_identical() -> None:
    copies = [_score("a"), _score("a", scored_at="2026-01-01T00:00:09Z", latency_ms=9000.0)]
    result = account(["a"], copies, [])
    assert (result.scored, result.duplicated_identical, result.duplicated_different) == (1, 1, 0)
    assert result.ok


def test_a_duplicate_with_another_score_or_feature_value_differs() -> None:
    result = account(["a", "b"], [_score("a"), _score("a", score=0.2), _score("b"), _score("b", history_count=1.0)], [])
    assert (result.duplicated_identical, result.duplicated_different) == (0, 2)
    assert result.different_ids == ("a", "b")
    assert result.difference == "a differs in score: 0.1 vs 0.2"
    assert not result.ok


def test_a_transaction_both_scored_and_dead_lettered_differs() -> None:
    result = account(["a"], [_score("a")], [("a", "predictor refused it")])
    assert (result.scored, result.dead_lettered, result.duplicated_different) == (1, 1, 1)
    assert "outcome: 'score' vs 'dead letter'" in result.difference
    assert not result.ok


def test_outcomes_of_unpublished_sends_are_set_apart() -> None:
    # The producer gave up on "x", but Kafka had taken it: its score is no loss and no published event.
    result = account(["a"], [_score("a"), _score("x")], [(None, "no tracking id")])
    assert (result.published, result.scored, result.unpublished, result.lost) == (1, 1, 2, 0)
    assert result.ok


def test_a_users_history_counts_must_follow_one_another() -> None:
    consecutive = [_score("a", history_count=4.0), _score("c", history_count=6.0), _score("b", history_count=5.0),
                   _score("b", history_count=5.0)]  # any order; an identical duplicate is one transaction
    assert account(["a", "b", "c"], consecutive, []).ok
    # The third transaction saw a state without the second: read stale, e.g. kept past a rebalance.
    stale = [_score("a", history_count=4.0), _score("b", history_count=5.0), _score("c", history_count=5.0)]
    result = account(["a", "b", "c"], stale, [])
    assert result.broken_histories == 1 and not result.ok
    assert "user_1: history counts [4.0, 5.0, 5.0]" in result.describe()


def test_a_loss_is_placed_by_partition_and_offset_range() -> None:
    from types import SimpleNamespace

    from benchmarks.chaos import where_lost

    positions = {f"tx-{i}": (i % 2, i // 2) for i in range(20)}  # even ids on p0, odd on p1, offsets 0..9
    feed = SimpleNamespace(delivered=set(positions), positions=positions)
    lost = {"tx-6", "tx-8", "tx-10", "tx-15"}  # p0 offsets 3, 4, 5; p1 offset 7
    outcomes = SimpleNamespace(scores=[{"transaction_id": tid} for tid in positions if tid not in lost | {"tx-3"}],
                               dead_letters=[("tx-3", "bad")])
    assert where_lost(feed, outcomes) == "lost records at (partition: offsets) p0: 3-5; p1: 7"
