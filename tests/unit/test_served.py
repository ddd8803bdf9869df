"""Training rows from served scores: the join with labels, and the split by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from fraud.events import Label, Score
from fraud.features import FEATURE_NAMES
from training_pipeline.served import join_served, split_by_time

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def served_score(i: int, features: dict[str, float] | None = None, scored_hours: float = 0.0) -> Score:
    """Transaction ``tx-i`` at T0 + i minutes, each feature = i + its column index / 100 (so rows are recognisable)."""
    features = features if features is not None else {name: i + k / 100 for k, name in enumerate(FEATURE_NAMES)}
    return Score(transaction_id=f"tx-{i}", user_id=f"user_{i % 7}", event_time=T0 + timedelta(minutes=i), score=0.2,
                 decision="legit", threshold=0.5, model_name="fraud-detection", model_version="1",
                 scored_at=T0 + timedelta(minutes=i, hours=scored_hours), latency_ms=1.0, features=features)


def label(i: int, is_fraud: bool, days: float = 1.0) -> Label:
    return Label(transaction_id=f"tx-{i}", user_id=f"user_{i % 7}", is_fraud=is_fraud,
                 source="chargeback" if is_fraud else "cleared", reported_at=T0 + timedelta(days=days))


def test_a_labelled_score_becomes_a_row_of_exactly_the_features_the_model_saw() -> None:
    rows = join_served([served_score(1), served_score(2), served_score(3)], [label(1, True), label(3, False), label(9, True)])
    assert list(rows.columns) == [*FEATURE_NAMES, "fraud", "event_time"]
    assert rows["fraud"].tolist() == [1, 0]  # tx-2 has no label yet, tx-9 was never scored
    assert rows[list(FEATURE_NAMES)].iloc[0].tolist() == [1 + k / 100 for k in range(len(FEATURE_NAMES))]
    assert rows["event_time"].tolist() == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)]


def test_redelivered_scores_count_once_and_the_latest_label_wins() -> None:
    rows = join_served([served_score(1), served_score(1)], [label(1, False, days=1), label(1, True, days=3)])
    assert len(rows) == 1 and rows["fraud"].iloc[0] == 1  # a chargeback overturned the earlier 'cleared'
    rows = join_served([served_score(1)], [label(1, True, days=3), label(1, False, days=1)])  # arrival order aside
    assert rows["fraud"].iloc[0] == 1


def test_scores_with_other_features_or_before_the_window_are_left_out() -> None:
    older_model = served_score(1, features={"amount": 10.0})
    rows = join_served([older_model, served_score(2, scored_hours=-48), served_score(3)],
                       [label(1, True), label(2, True), label(3, True)], since=T0 - timedelta(hours=1))
    assert rows["event_time"].tolist() == [T0 + timedelta(minutes=3)]


def test_no_rows_is_an_empty_frame_with_the_columns() -> None:
    rows = join_served([], [label(1, True)])
    assert rows.empty and list(rows.columns) == [*FEATURE_NAMES, "fraud", "event_time"]
    assert {split: len(part) for split, part in split_by_time(rows).items()} == {"train": 0, "valid": 0, "test": 0}


def test_split_by_time_gives_train_the_oldest_and_test_the_newest() -> None:
    shuffled = [served_score(i) for i in (7, 3, 9, 0, 5, 1, 8, 2, 6, 4)]
    splits = split_by_time(join_served(shuffled, [label(i, i % 2 == 0) for i in range(10)]))
    first_feature = {split: part[FEATURE_NAMES[0]].tolist() for split, part in splits.items()}
    assert first_feature == {"train": [0, 1, 2, 3, 4, 5], "valid": [6, 7], "test": [8, 9]}
    assert all(list(part.columns) == [*FEATURE_NAMES, "fraud"] for part in splits.values())
    assert pd.concat(splits.values())["fraud"].sum() == 5


def test_a_split_file_says_which_rows_are_served_so_the_drift_reference_leaves_them_out(tmp_path) -> None:
    """Served rows are labelled by outcome (every fraud, some legit): not a sample of traffic, so not the reference."""
    import shutil

    import pandas as pd

    from training_pipeline.training_data import history_rows, write_split

    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0, 5.0], "fraud": [0, 0, 0, 1, 1]})
    write_split(frame, tmp_path / "train.parquet", served_rows=2)
    shutil.copyfile(tmp_path / "train.parquet", tmp_path / "copied.parquet")  # as the pipeline step hands it on
    assert history_rows(tmp_path / "copied.parquet")["amount"].tolist() == [1.0, 2.0, 3.0]
    assert pd.read_parquet(tmp_path / "copied.parquet").equals(frame)  # the training itself sees every row
    write_split(frame, tmp_path / "plain.parquet")
    assert len(history_rows(tmp_path / "plain.parquet")) == 5


def test_the_traffic_is_every_scored_transaction_once_with_the_current_features() -> None:
    from training_pipeline.served import traffic

    older_model = served_score(4).model_copy(update={"features": {"amount": 1.0}})
    frame = traffic([served_score(1), served_score(2), served_score(1), older_model, served_score(3, scored_hours=-48)],
                    since=T0)
    assert frame[FEATURE_NAMES[0]].tolist() == [1.0, 2.0] and list(frame.columns) == list(FEATURE_NAMES)
