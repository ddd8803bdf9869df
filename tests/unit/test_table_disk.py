"""The worker's table directory is kept only for the changelog incarnation that filled it (`stream_scorer.table_disk`)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.recovery import filled_records, replayed_records
from fraud.settings import Settings
from stream_scorer.app import table_dir
from stream_scorer.table_disk import forget_if_stale, remember


def _filled(tmp_path: Path) -> Path:
    directory = tmp_path / "tables"
    directory.mkdir()
    (directory / "user-activity-0.db").mkdir()
    return directory


def test_a_directory_of_the_same_changelog_is_kept(tmp_path: Path) -> None:
    directory = _filled(tmp_path)
    remember(directory, "id-1")
    assert not forget_if_stale(directory, "id-1") and (directory / "user-activity-0.db").exists()


def test_a_directory_of_a_recreated_or_deleted_changelog_is_emptied(tmp_path: Path) -> None:
    directory = _filled(tmp_path)
    remember(directory, "id-1")
    assert forget_if_stale(directory, "id-2") and not directory.exists()
    directory = _filled(tmp_path)
    assert forget_if_stale(directory, None) and not directory.exists()  # the topic is gone


def test_an_unmarked_directory_is_trusted_while_its_topic_exists(tmp_path: Path) -> None:
    assert not forget_if_stale(_filled(tmp_path), "id-1")


def test_each_worker_has_its_own_table_directory(tmp_path: Path) -> None:
    named = Settings(_env_file=None, data_dir=tmp_path, scorer_group_instance_id="worker-0")
    assert table_dir(named) != table_dir(named.model_copy(update={"scorer_group_instance_id": "worker-1"}))
    anonymous = Settings(_env_file=None, data_dir=tmp_path)
    assert table_dir(anonymous) != table_dir(anonymous.model_copy(update={"scorer_metrics_port": 9109}))


def test_replayed_records_are_read_from_fausts_recovery_tables() -> None:
    log = """[INFO] [^---Recovery]: Highwater for active changelog partitions:
+Highwater - Active-----------+-----------+-----------+
| topic                       | partition | highwater |
+-----------------------------+-----------+-----------+
| app-user-activity-changelog | 0         | 99        |
| 〃                          | 1         | 49        |
+-----------------------------+-----------+-----------+
[INFO] [^---Recovery]: active offsets at start of reading:
+Reading Starts At - Active---+-----------+--------+
| topic                       | partition | offset |
+-----------------------------+-----------+--------+
| app-user-activity-changelog | 0         | 89     |
| 〃                          | 1         | -1     |
+-----------------------------+-----------+--------+
"""
    assert replayed_records(log) == 10 + 50


def test_the_benchmark_reads_how_many_records_the_worker_filled_in_bulk_from_its_log() -> None:
    line = ("[2026-11-29 04:14:11,448] [24943] [INFO] empty table directory: 1000002 records of "
            "recovery-c2b14e-user-activity-changelog written to it in 7.6 s")
    assert filled_records(f"earlier lines\n{line}\nlater lines") == 1_000_002
    assert filled_records("a restart with its disk logs no such line") == 0
