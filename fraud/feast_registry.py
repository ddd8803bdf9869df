"""The Feast registry as one object in S3 (MinIO, Ceph, AWS), read and written with the `minio` client.

Feast's own S3 registry store builds a boto3 client from the process environment
(FEAST_S3_ENDPOINT_URL, AWS_*); this one takes its endpoint and keys from the
`registry` section of feature_store.cluster.yaml, which `fraud.feature_store`
fills from Settings, so the registry is configured like every other endpoint.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from feast.infra.registry.registry_store import RegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig

from fraud.storage import minio_client


class MinioRegistryStore(RegistryStore):
    """registry.path is s3://bucket/key; registry.s3_endpoint, s3_access_key and s3_secret_key reach the bucket."""

    def __init__(self, registry_config: RegistryConfig, repo_path: Path) -> None:
        extra = registry_config.model_extra or {}
        location = urlparse(registry_config.path)
        self.bucket, self.key = location.netloc, location.path.lstrip("/")
        self.client = minio_client(extra["s3_endpoint"], extra["s3_access_key"], extra["s3_secret_key"])

    def get_registry_proto(self) -> RegistryProto:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, self.key)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket"):  # Feast then creates an empty registry
                raise FileNotFoundError(f"no Feast registry at s3://{self.bucket}/{self.key}") from error
            raise
        try:
            proto = RegistryProto()
            proto.ParseFromString(response.read())
            return proto
        finally:
            response.close()
            response.release_conn()

    def update_registry_proto(self, registry_proto: RegistryProto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(datetime.now(UTC))
        payload = registry_proto.SerializeToString()
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)
        self.client.put_object(self.bucket, self.key, io.BytesIO(payload), len(payload))

    def teardown(self) -> None:
        self.client.remove_object(self.bucket, self.key)
