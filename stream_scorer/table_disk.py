"""The worker's table on disk belongs to one incarnation of its changelog topic.

Faust's RocksDB store keeps, per partition, the changelog offset it holds, and on
start reads the changelog from there. If the topic was deleted and created again
(`stream_scorer.seed` does, to reset the table), those offsets point into a topic
that no longer exists: a DB could keep states the new topic lacks, and skip the
new topic's first records. So the directory records the topic's id (KIP-516), and
a worker that finds another id, or none for a topic that is gone, starts empty.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from kafka.admin import KafkaAdminClient

from fraud.settings import Settings

log = logging.getLogger(__name__)
MARKER = "changelog-topic-id"


def changelog_topic_id(settings: Settings, topic: str) -> str | None:
    """The broker's id of ``topic``, or None if there is no such topic."""
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    found = [t for t in described if t.get("name") == topic and not t.get("error_code")]
    return str(found[0]["topic_id"]) if found else None


def forget_if_stale(directory: Path, topic_id: str | None) -> bool:
    """Empty ``directory`` if its tables came from another incarnation of the changelog (or one now gone); True if so.

    A directory with no marker is trusted once the topic exists: it was filled by a
    worker that stopped before it could write the marker (`remember`), from the topic
    as it is now, unless the topic was recreated meanwhile; that window is the first
    recovery of a new directory, and the marker is written right after it.
    """
    marker = directory / MARKER
    recorded = marker.read_text().strip() if marker.is_file() else None
    if not directory.is_dir() or not any(directory.iterdir()):
        return False
    if topic_id is not None and recorded in (None, topic_id):
        return False
    log.warning("the table in %s belongs to changelog %s, the broker's is %s: starting from an empty table",
                directory, recorded, topic_id)
    shutil.rmtree(directory)
    return True


def remember(directory: Path, topic_id: str) -> None:
    """Record which incarnation of the changelog ``directory``'s tables hold."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text(f"{topic_id}\n")
