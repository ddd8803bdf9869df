"""The local stack behind `fraud stack up / down / status`: services started in dependency order."""

from __future__ import annotations

import logging

from fraud.local_stack.kafka import LocalKafka, create_topics
from fraud.settings import Settings

log = logging.getLogger(__name__)


def stack_up(settings: Settings) -> dict[str, str]:
    """Start every local service that is not running yet, create the topics; return each one's status."""
    broker = LocalKafka(settings)
    status = broker.start()
    created = create_topics(settings)
    if created:
        log.info("created topics: %s", ", ".join(created))
    return {"kafka": status.describe()}


def stack_down(settings: Settings) -> dict[str, str]:
    """Stop the services `stack_up` started, last started first."""
    stopped = LocalKafka(settings).stop()
    return {"kafka": "stopped" if stopped else "was not running (started by this stack)"}


def stack_status(settings: Settings) -> dict[str, str]:
    """One line of status per service."""
    return {"kafka": LocalKafka(settings).status().describe()}
