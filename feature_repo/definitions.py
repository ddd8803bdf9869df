"""Feast definitions: the `user` entity, its batch profile, its streaming activity, and the model's feature service.

- `user_profile` (batch): home location and median purchase amount, written by the
  prep step and refreshed by each pipeline run.
- `user_activity` (push): the features of the user's latest transaction, which
  include the streaming history aggregates. The prep step writes its history
  (the batch source, used for point-in-time training data); the stream worker
  pushes fresh rows through `user_activity_push`.
- `fraud_model_v1`: exactly the model's inputs, in `fraud.features.FEATURE_NAMES`.

The sources have no created-timestamp column. Each pipeline run rewrites them whole, so every row of a source
would carry the same created time and break no tie between rows of the same user and time. Declared, it makes
Feast's point-in-time join deduplicate by it, a third pass over the joined pairs: at 1,000,000 users the training
data step then took 365-385 s here instead of 201-221 s, for the same rows.

The sources are the prep step's Parquet output, read by Feast's Spark offline store (local[*] here,
the cluster's Spark there): a local folder, or s3a:// on a cluster (FRAUD_FEATURES_URI). Paths come from the
product's settings. `feast_objects(settings)` is what the
product applies; the module-level names below exist for the `feast` CLI.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, PushSource, ValueType
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.types import Float64, String

from fraud.features import FEATURE_NAMES
from fraud.settings import Settings, load_settings

PROFILE_FEATURES = ("home_latitude", "home_longitude", "median_purchase_amount")
FEATURE_SERVICE = "fraud_model_v1"
PUSH_SOURCE = "user_activity_push"


def feast_objects(settings: Settings) -> list:
    """Every Feast object of the repo, with sources under ``settings.features_location``."""
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING,
                  description="A card holder, user_0, user_1, ...")

    profile_source = SparkSource(
        name="user_profile_source",
        path=f"{settings.features_location}/user_profile.parquet",
        file_format="parquet",
        timestamp_field="event_timestamp",
    )
    user_profile = FeatureView(
        name="user_profile",
        entities=[user],
        ttl=timedelta(days=400),  # a profile stays valid until the next refresh
        schema=[Field(name=name, dtype=Float64) for name in PROFILE_FEATURES],
        source=profile_source,
        description="Batch statistics per user, from the profile part of the training window.",
    )

    activity_source = SparkSource(
        name="user_activity_source",
        path=f"{settings.features_location}/transaction_features.parquet",
        file_format="parquet",
        timestamp_field="event_timestamp",
    )
    activity_push = PushSource(name=PUSH_SOURCE, batch_source=activity_source)
    user_activity = FeatureView(
        name="user_activity",
        entities=[user],
        ttl=timedelta(days=90),  # older activity says nothing about the card's current use
        schema=[Field(name="transaction_id", dtype=String)] + [Field(name=name, dtype=Float64) for name in FEATURE_NAMES],
        source=activity_push,
        description="Features of the user's latest transaction, history aggregates included.",
    )
    model_inputs = FeatureService(name=FEATURE_SERVICE, features=[user_activity[list(FEATURE_NAMES)]],
                                  description="Exactly the fraud model's inputs, in input order.")
    return [user, profile_source, user_profile, activity_source, activity_push, user_activity, model_inputs]


# For `feast -c feature_repo apply|plan`, which collects module-level objects.
(user, user_profile_source, user_profile, user_activity_source, user_activity_push, user_activity,
 fraud_model_v1) = feast_objects(load_settings())
