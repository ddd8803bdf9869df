"""How `build_app` configures Faust from Settings."""

from __future__ import annotations

from fraud.settings import Settings
from stream_scorer.app import build_app


def test_a_group_instance_id_reaches_the_kafka_consumer_for_static_membership(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, scorer_group_instance_id="fraud-worker-7d9f-x2")
    app = build_app(settings).app
    assert app.conf.consumer_group_instance_id == "fraud-worker-7d9f-x2"
    assert build_app(Settings(data_dir=tmp_path / "b")).app.conf.consumer_group_instance_id is None
