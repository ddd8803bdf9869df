"""`RecentStates`: what the worker keeps of the states it wrote, and when it forgets them."""

from stream_scorer.recent_states import RecentStates


def test_written_states_are_known_in_their_generation_only() -> None:
    recent = RecentStates(max_users=10)
    recent.wrote({"a": {"count": 1}, "b": {"count": 2}}, generation=3)
    assert recent.known(["a", "c", "b"], generation=3) == {"a": {"count": 1}, "b": {"count": 2}}
    assert recent.known(["a", "b"], generation=4) == {}  # a rebalance: another worker may have written them since
    recent.wrote({"a": {"count": 5}}, generation=4)
    assert recent.known(["a", "b"], generation=4) == {"a": {"count": 5}}


def test_beyond_its_bound_the_users_kept_first_go() -> None:
    recent = RecentStates(max_users=4)
    for user in range(4):
        recent.wrote({f"u{user}": {"count": user}}, generation=1)
    recent.wrote({"u0": {"count": 10}}, generation=1)  # written again: the new state, in its old place
    assert recent.known(["u0"], generation=1) == {"u0": {"count": 10}}
    recent.wrote({"u4": {}, "u5": {}}, generation=1)  # six kept: past 4 + 4 // 4, trimmed to the last four kept
    assert set(recent.known([f"u{n}" for n in range(6)], generation=1)) == {"u2", "u3", "u4", "u5"}
    assert len(recent.states) == 4


def test_a_bound_of_zero_keeps_nothing() -> None:
    recent = RecentStates(max_users=0)
    recent.wrote({"a": {"count": 1}}, generation=1)
    assert recent.known(["a"], generation=1) == {}
