"""Model artifacts in one place: the local filesystem by default, S3/MinIO through the `minio` client.

Every pipeline step and the predictor go through `artifact_store(settings)`,
so a step never carries its own upload or download helper.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from fraud.errors import FraudError
from fraud.settings import Settings


class ArtifactStore(Protocol):
    """Put a file under a key and get it back by the URI that `put` returned."""

    def put(self, local_path: Path, key: str) -> str: ...

    def get(self, uri: str, local_path: Path) -> Path: ...


class LocalArtifactStore:
    """Artifacts under ``<data dir>/artifacts``; URIs are file:// URIs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, local_path: Path, key: str) -> str:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, target)
        return target.resolve().as_uri()

    def get(self, uri: str, local_path: Path) -> Path:
        source = Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)
        if not source.is_file():
            raise FraudError(f"artifact {uri} does not exist")
        local_path.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve() != local_path.resolve():
            shutil.copyfile(source, local_path)
        return local_path


def minio_client(endpoint: str, access_key: str, secret_key: str):  # -> minio.Minio
    """A client of the S3 API at ``endpoint`` (a URL, or host:port meaning http)."""
    from minio import Minio

    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    return Minio(parsed.netloc, access_key=access_key, secret_key=secret_key, secure=parsed.scheme == "https")


class S3ArtifactStore:
    """Artifacts in an S3 bucket (MinIO, Ceph/ODF, AWS); URIs are s3://bucket/key."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str) -> None:
        self.client = minio_client(endpoint, access_key, secret_key)
        self.bucket = bucket

    def put(self, local_path: Path, key: str) -> str:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)
        self.client.fput_object(self.bucket, key, str(local_path))
        return f"s3://{self.bucket}/{key}"

    def get(self, uri: str, local_path: Path) -> Path:
        from minio.error import S3Error

        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            raise FraudError(f"{uri} is not an s3:// URI")
        try:
            self.client.fget_object(parsed.netloc, parsed.path.lstrip("/"), str(local_path))
        except S3Error as error:
            raise FraudError(f"artifact {uri}: {error.code}") from error
        return local_path


def artifact_store(settings: Settings) -> ArtifactStore:
    """The S3 store when ``FRAUD_S3_ENDPOINT`` and ``FRAUD_ARTIFACT_BUCKET`` are set, else the local one."""
    if settings.s3_endpoint and settings.artifact_bucket:
        if not settings.s3_access_key or settings.s3_secret_key is None:
            raise FraudError("S3 artifacts need FRAUD_S3_ACCESS_KEY and FRAUD_S3_SECRET_KEY")
        return S3ArtifactStore(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
                               settings.artifact_bucket)
    return LocalArtifactStore(settings.data_dir / "artifacts")


def fetch(settings: Settings, uri: str, local_path: Path) -> Path:
    """Download any artifact URI this product writes (file:// or s3://) to ``local_path``."""
    if uri.startswith("s3://"):
        store = artifact_store(settings)
        if not isinstance(store, S3ArtifactStore):
            raise FraudError(f"{uri} is on S3 but FRAUD_S3_ENDPOINT / FRAUD_ARTIFACT_BUCKET are not set")
        return store.get(uri, local_path)
    return LocalArtifactStore(settings.data_dir / "artifacts").get(uri, local_path)
