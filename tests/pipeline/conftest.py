"""Pipeline-tier fixtures: one generated dataset, prepared once by Spark, shared by the tests."""

from __future__ import annotations

import pytest

from fraud.datagen import GenerationSpec, generate
from fraud.settings import Settings
from training_pipeline.prep import PrepResult, prepare


@pytest.fixture(scope="session")
def prepared(spark: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, PrepResult]:
    """3,000 users (about 53,000 transactions) generated and run through the Spark prep step."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("prepared"), _env_file=None)
    generate(GenerationSpec(users=3000, days=30, seed=11), settings.raw_dir)
    return settings, prepare(settings, spark=spark)
