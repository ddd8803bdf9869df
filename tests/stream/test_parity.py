"""The features in the score events equal the batch path's (Spark prep) for the same history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.datagen import GenerationSpec, generate
from fraud.events import Score, decode
from fraud.features import FEATURE_NAMES
from fraud.settings import Settings
from producers.publisher import publish
from producers.sources import DatasetSource
from tests.integration.test_roundtrip import consume_all
from tests.predictor.conftest import Predictor
from tests.stream.conftest import Worker, put_profiles
from training_pipeline.prep import prepare


def test_score_events_carry_the_batch_paths_features(stream_settings: Settings, predictor: Predictor, spark: object) -> None:
    settings = stream_settings
    generated = generate(GenerationSpec(users=300, days=30, seed=3), settings.raw_dir)
    result = prepare(settings, spark=spark)
    profiles = pd.read_parquet(result.profile_path)
    put_profiles(settings, {row.user_id: (row.home_latitude, row.home_longitude, row.median_purchase_amount)
                            for row in profiles.itertuples()})
    worker = Worker(settings)
    try:
        report = publish(DatasetSource(generated.transactions_path), settings, topic=settings.topic_transactions)
        assert report.delivered == generated.transactions > 3000
        messages = consume_all(settings, settings.topic_scores, expected=report.delivered, timeout_s=120)
    finally:
        worker.stop()
    scores = [decode(m.value, Score) for m in messages]
    assert len({s.transaction_id for s in scores}) == generated.transactions, worker.log_tail()

    stream = pd.DataFrame([s.features for s in scores], index=[s.transaction_id for s in scores])
    batch = pd.read_parquet(result.features_path).set_index("transaction_id").loc[stream.index]
    mismatches = {}
    for name in FEATURE_NAMES:
        close = np.isclose(stream[name].to_numpy(), batch[name].to_numpy(), rtol=1e-6, atol=1e-9)
        if not close.all():
            mismatches[name] = (int((~close).sum()), stream[name][~close][:3].tolist(), batch[name][~close][:3].tolist())
    assert not mismatches, mismatches
    assert batch["history_count"].max() > 10 and batch["repeat_retailer"].mean() > 0.1  # history really varies
