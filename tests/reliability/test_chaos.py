"""Faults injected into real processes, each ending in an accounting by transaction_id (`benchmarks.chaos`).

The CI sizes of `fraud bench chaos`: thousands of events, outages of seconds (the
predictor is away for its 2 s down plus the ~10 s it takes to start and load the
model). A failure shows the accounting, what the sampled metrics saw, and the
workers' logs. The whole package takes about four minutes on two cores.
"""

from __future__ import annotations

from benchmarks.chaos import (broker_outage, faust_skips, feast_outage, poison, predictor_outage, rebalance,
                              worker_kills)
from benchmarks.chaos_stack import ChaosStack


def test_a_worker_sigkilled_twice_loses_nothing_and_duplicates_nothing_that_differs(chaos_stack: ChaosStack) -> None:
    result = worker_kills(chaos_stack, events=10_000, kills=2, rate=1_000.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()
    assert result.accounting.scored == result.accounting.published == 10_000, result.report()


def test_a_broker_outage_under_load_loses_nothing(chaos_stack: ChaosStack) -> None:
    result = broker_outage(chaos_stack, events=5_000, outage_s=3.0, rate=500.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()
    assert result.accounting.published > 0 and result.accounting.dead_lettered == 0, result.report()


def test_a_predictor_outage_pauses_scoring_and_loses_nothing(chaos_stack: ChaosStack) -> None:
    result = predictor_outage(chaos_stack, events=5_000, outage_s=2.0, rate=500.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()
    assert result.accounting.scored == 5_000, result.report()


def test_an_unreadable_feast_store_pauses_scoring_and_loses_nothing(chaos_stack: ChaosStack) -> None:
    result = feast_outage(chaos_stack, events=5_000, outage_s=3.0, rate=500.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()
    assert result.accounting.scored == 5_000, result.report()


def test_a_worker_joining_and_leaving_mid_run_loses_nothing(chaos_stack: ChaosStack) -> None:
    result = rebalance(chaos_stack, events=7_000, rate=300.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()
    assert result.accounting.scored == 7_000, result.report()


def test_poison_records_are_dead_lettered_with_a_reason_and_never_pause_the_worker(chaos_stack: ChaosStack) -> None:
    result = poison(chaos_stack, events=1_000, rate=1_000.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()
    assert result.accounting.dead_lettered > 0 and result.accounting.scored >= 1_000, result.report()


def test_records_faust_skips_are_read_from_the_broker_and_scored(chaos_stack: ChaosStack) -> None:
    result = faust_skips(chaos_stack, events=5_000, rate=1_000.0)
    print(result.summary())  # pytest -rP shows it
    assert result.ok, result.report()  # a violation if the fault never reached the worker
    assert result.accounting.scored == 5_000 and result.accounting.lost == 0, result.report()
