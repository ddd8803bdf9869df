"""`RecentStates`: the users' states this worker wrote last, parsed, so the next batch need not read them back.

The table on disk (RocksDB) holds each state as JSON bytes; reading and parsing a
batch's states back was the largest single step of the state's cost per event.
A user's state can change only through the worker that owns their partition, and
ownership moves only in a rebalance, which starts a new consumer generation. So a
state kept here is the table's own for as long as the generation it was written in
lasts; on any other generation every kept state is forgotten, and read from the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import islice


class RecentStates:
    """Up to ``max_users`` states, valid for one consumer generation; beyond, the users first kept are forgotten."""

    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        self.generation: int | None = None
        self.states: dict[str, dict] = {}  # least recently written first

    def known(self, user_ids: Sequence[str], generation: int) -> dict[str, dict]:
        """The kept states of ``user_ids`` (users without one are left out)."""
        self._for(generation)
        states = self.states
        return {user: states[user] for user in user_ids if user in states}

    def wrote(self, states: Mapping[str, dict], generation: int) -> None:
        """Keep ``states``, now in the table (they must not be changed after this)."""
        if not self.max_users:
            return
        self._for(generation)
        kept = self.states
        kept.update(states)  # a user stays where first kept: moving each to the end cost more than a re-read
        if len(kept) > self.max_users + self.max_users // 4:  # trimmed now and then, not on every write
            self.states = dict(islice(kept.items(), len(kept) - self.max_users, None))

    def _for(self, generation: int) -> None:
        if generation != self.generation:
            self.states.clear()
            self.generation = generation
