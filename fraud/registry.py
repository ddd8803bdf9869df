"""The model registry: registered model -> versions -> artifact URI, format, metadata, and which is production.

Two backends behind one interface:
- `KubeflowModelRegistry`, through the `model-registry` client, when
  ``FRAUD_MODEL_REGISTRY_URL`` is set;
- `EmbeddedRegistry`, a JSON file under the data dir, otherwise.

The Kubeflow client needs a live server when it is built and runs its own event
loop (nest_asyncio), so build and call it from plain synchronous code, never
inside a running asyncio loop (Faust, uvicorn): use a thread there.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fraud.errors import FraudError
from fraud.settings import Settings


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: str
    uri: str
    model_format: str
    format_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    registered_at: str = ""
    production: bool = False


class ModelRegistry(Protocol):
    """What the pipeline, the predictor and `fraud models` need from a registry."""

    def register(self, name: str, uri: str, model_format: str, format_version: str, metadata: dict[str, Any]) -> ModelVersion: ...

    def promote(self, name: str, version: str) -> ModelVersion: ...

    def versions(self, name: str) -> list[ModelVersion]: ...

    def production(self, name: str) -> ModelVersion | None: ...

    def models(self) -> list[str]: ...


class EmbeddedRegistry:
    """A registry in one JSON file, safe for concurrent writers on one machine (flock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / ".registry.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(self.path.read_text()) if self.path.exists() else {"models": {}}
            yield state
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
            os.replace(temporary, self.path)  # readers never see half a file

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {"models": {}}

    def register(self, name: str, uri: str, model_format: str, format_version: str, metadata: dict[str, Any]) -> ModelVersion:
        with self._locked() as state:
            model = state["models"].setdefault(name, {"versions": [], "production": None})
            version = ModelVersion(name, str(len(model["versions"]) + 1), uri, model_format, format_version, metadata,
                                   datetime.now(UTC).isoformat())
            model["versions"].append(asdict(version))
        return version

    def promote(self, name: str, version: str) -> ModelVersion:
        with self._locked() as state:
            model = state["models"].get(name)
            if model is None or not any(v["version"] == version for v in model["versions"]):
                raise FraudError(f"model {name!r} has no version {version!r}")
            model["production"] = version
        return next(v for v in self.versions(name) if v.version == version)

    def versions(self, name: str) -> list[ModelVersion]:
        model = self._read()["models"].get(name)
        if model is None:
            return []
        return [ModelVersion(**(v | {"production": v["version"] == model["production"]})) for v in model["versions"]]

    def production(self, name: str) -> ModelVersion | None:
        return next((v for v in self.versions(name) if v.production), None)

    def models(self) -> list[str]:
        return sorted(self._read()["models"])


class KubeflowModelRegistry:
    """The Kubeflow Model Registry; production is the registered model's `production_version` property."""

    def __init__(self, url: str, author: str, token: str | None = None) -> None:
        from model_registry import ModelRegistry as Client

        try:
            self.client = Client(url, author=author, user_token=token)
        except Exception as error:  # the client raises bare exceptions when the server is down
            raise FraudError(f"model registry at {url} does not answer: {error}") from error

    def register(self, name: str, uri: str, model_format: str, format_version: str, metadata: dict[str, Any]) -> ModelVersion:
        version = str(len(self.versions(name)) + 1)
        flat = {key: value if isinstance(value, (str, int, float, bool)) else json.dumps(value) for key, value in metadata.items()}
        self.client.register_model(name, uri, model_format_name=model_format, model_format_version=format_version,
                                   version=version, metadata=flat)
        return next(v for v in self.versions(name) if v.version == version)

    def promote(self, name: str, version: str) -> ModelVersion:
        model = self.client.get_registered_model(name)
        if model is None or self.client.get_model_version(name, version) is None:
            raise FraudError(f"model {name!r} has no version {version!r}")
        model.custom_properties = {**(model.custom_properties or {}), "production_version": version}
        self.client.update(model)
        return next(v for v in self.versions(name) if v.version == version)

    def versions(self, name: str) -> list[ModelVersion]:
        model = self.client.get_registered_model(name)
        if model is None:
            return []
        production = (model.custom_properties or {}).get("production_version")
        found = []
        for version in self.client.get_model_versions(name):
            artifact = self.client.get_model_artifact(name, version.name)
            found.append(ModelVersion(
                name, version.name, artifact.uri if artifact else "", artifact.model_format_name if artifact else "",
                artifact.model_format_version if artifact else "", dict(version.custom_properties or {}),
                str(version.create_time_since_epoch or ""), version.name == production,
            ))
        return sorted(found, key=lambda v: int(v.version) if v.version.isdigit() else 0)

    def production(self, name: str) -> ModelVersion | None:
        return next((v for v in self.versions(name) if v.production), None)

    def models(self) -> list[str]:
        return sorted(model.name for model in self.client.get_registered_models())


def open_registry(settings: Settings) -> ModelRegistry:
    """The Kubeflow Model Registry when configured, else the embedded one under the data dir."""
    if settings.model_registry_url:
        token = settings.model_registry_token.get_secret_value() if settings.model_registry_token else None
        return KubeflowModelRegistry(settings.model_registry_url, settings.model_registry_author, token)
    return EmbeddedRegistry(settings.data_dir / "registry" / "registry.json")
