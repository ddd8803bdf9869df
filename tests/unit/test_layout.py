"""What runs on a cluster never reaches for the local dev stack, and every package imported directly is declared."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

RUNTIME = ("stream_scorer", "predictor", "training_pipeline", "monitor")
OURS = {"fraud", "producers", "benchmarks", "training_pipeline", "feature_repo", "predictor", "stream_scorer", "monitor",
        "tests"}
# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"kafka": "kafka-python", "faust": "faust-streaming", "sklearn": "scikit-learn", "yaml": "pyyaml",
                 "model_registry": "model-registry", "prometheus_client": "prometheus-client",
                 "pydantic_core": "pydantic-core", "pydantic_settings": "pydantic-settings",
                 "kfp_server_api": "kfp-server-api", "onnxruntime": "onnxruntime", "cloudevents": "cloudevents",
                 "tritonclient": "tritonclient"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute imports, at any depth in the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources(*packages: str) -> list[Path]:
    return [path for package in packages for path in sorted((REPO / package).rglob("*.py"))]


def test_no_runtime_module_imports_the_local_stack() -> None:
    offenders = {str(path.relative_to(REPO)): sorted(name for name in _imports(path) if name.startswith("fraud.local_stack"))
                 for path in _sources(*RUNTIME)}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_every_package_imported_directly_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = {_name(requirement) for requirement in project["project"]["dependencies"]}
    declared |= {_name(requirement) for requirement in project["dependency-groups"]["dev"]}
    imported = {name.split(".")[0] for path in _sources(*OURS - {"tests"}, "tests") for name in _imports(path)}
    third_party = {name for name in imported if name not in OURS and name not in sys.stdlib_module_names}
    missing = {name for name in third_party if DISTRIBUTIONS.get(name, name.replace("_", "-")) not in declared}
    assert missing == set()


def _name(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement, normalised."""
    for stop in "<>=!~[; ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-")
