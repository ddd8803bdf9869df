"""The product's handle on Feast: open the store from settings, apply the repo, materialize."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

import yaml

from fraud.errors import FraudError
from fraud.settings import FEATURE_REPO, Settings, settings_env

log = logging.getLogger(__name__)
REPO_DIR = FEATURE_REPO


def open_store(settings: Settings):  # -> feast.FeatureStore
    """The FeatureStore of ``settings.feast_config``, its `${FRAUD_...}` placeholders filled from ``settings``."""
    from feast import FeatureStore, RepoConfig

    raw = yaml.safe_load((REPO_DIR / settings.feast_config).read_text())
    (settings.data_dir / "feast").mkdir(parents=True, exist_ok=True)
    # Spark's values after the placeholders: they are values, never templates (a secret key may hold a `$`).
    config = RepoConfig(**_with_spark_conf(_fill(raw, settings_env(settings), settings.feast_config), settings))
    config.repo_path = REPO_DIR
    if config.online_store.type == "sqlite":
        _write_ahead_log(Path(config.online_store.path))
    return FeatureStore(config=config)


def _with_spark_conf(raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A Spark offline store gets the product's Spark configuration (the prep step's), under the file's own keys."""
    offline = raw.get("offline_store") or {}
    if offline.get("type") != "spark":
        return raw
    from fraud.spark import prepare_process, spark_conf

    prepare_process()
    return {**raw, "offline_store": {**offline, "spark_conf": {**spark_conf(settings), **(offline.get("spark_conf") or {})}}}


def _fill(node: Any, values: dict[str, str], source: str) -> Any:
    """``node`` with `${NAME}` filled in every string: after parsing, so no value (a password) can change the YAML."""
    if isinstance(node, dict):
        return {key: _fill(value, values, source) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, values, source) for value in node]
    if not isinstance(node, str):
        return node
    try:
        return Template(node).substitute(values)
    except KeyError as missing:
        raise FraudError(f"feature_repo/{source} needs {missing.args[0]}, which is not set") from None


def _write_ahead_log(db_path: Path) -> None:
    """Put the SQLite online store in WAL mode (a setting the file keeps), so readers never wait for a writer.

    Three processes share it: the stream worker pushes every second, while the worker
    and the predictor read. In SQLite's default journal mode a push's commit locks
    readers out; a profile read then waited hundreds of milliseconds.
    """
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


@dataclass(frozen=True)
class MaterializeResult:
    """What `fraud pipeline features` did."""

    applied: list[str]
    start: datetime
    end: datetime


def apply_and_materialize(settings: Settings, start: datetime, end: datetime, store=None) -> MaterializeResult:
    """Register the repo's objects and load the offline rows of [start, end] into the online store."""
    from feature_repo.definitions import feast_objects

    store = store or open_store(settings)
    objects = feast_objects(settings)
    store.apply(objects)
    # Materialize is exclusive of nothing we want: pad the window so its first and last rows count.
    padded_start, padded_end = start - timedelta(seconds=1), end + timedelta(seconds=1)
    if store.config.online_store.type == "sqlite":  # Feast's writer stores a value per execute: too slow at 1M users
        from fraud.online_load import materialize_sqlite

        materialize_sqlite(store, padded_start, padded_end)
    else:
        store.materialize(start_date=padded_start, end_date=padded_end)
    names = [getattr(obj, "name", type(obj).__name__) for obj in objects]
    log.info("applied %s; materialized %s .. %s", ", ".join(names), start, end)
    return MaterializeResult(names, start, end)
