"""The Containerfile's install steps, run in a clean directory: every service's and step's entry point starts.

No container engine or registry is reachable here, so the image itself cannot be built. What can be
checked is what goes into it: the same files (the Containerfile's COPY lines) and the same `uv sync`
commands (its RUN lines), then each entry point the manifests and the pipeline use.
"""

from __future__ import annotations

import os
import re
import shutil
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

CONTAINERFILE = (REPO / "Containerfile").read_text()
BUILD_STAGE = CONTAINERFILE.split("\nFROM ", 2)[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean directory with the build stage's COPY'd files, after its `uv sync` RUN lines."""
    app = tmp_path_factory.mktemp("image") / "app"
    app.mkdir()
    for line in BUILD_STAGE.splitlines():
        if copy := re.fullmatch(r"COPY (?!--from)(.+) (\S+)", line.strip()):
            for source in copy.group(1).split():
                target = app / copy.group(2) if copy.group(2).endswith("/") and not source.endswith("/") else app / source
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(REPO / source, app / Path(source).name)
        elif run := re.fullmatch(r"RUN (uv sync .+)", line.strip()):
            # This machine's environment (its package index, its certificates), minus the test run's own venv.
            env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
            done = subprocess.run(run.group(1).split(), cwd=app, capture_output=True, text=True,
                                  env=env | {"UV_LINK_MODE": "hardlink"})  # the uv cache is on this filesystem
            assert done.returncode == 0, f"{run.group(1)}: {done.stderr[-3000:]}"
    return app


def test_the_containerfile_installs_without_dev_dependencies_from_the_lock_file() -> None:
    assert "RUN uv sync --frozen --no-dev --no-install-project" in BUILD_STAGE
    assert "RUN uv sync --frozen --no-dev" in BUILD_STAGE
    assert "USER 1001" in CONTAINERFILE  # non-root


@pytest.mark.parametrize("command", [
    ["python", "-m", "predictor", "--help"],
    ["python", "-m", "stream_scorer", "--help"],
    ["python", "-m", "monitor", "--help"],
    ["fraud", "--help"],
    ["fraud", "retrain", "--help"],
    # The KFP components run `python -m kfp.dsl.executor_main` and import their step from training_pipeline.steps.
    ["python", "-c", "import kfp.dsl.executor_main, training_pipeline.steps as s; "
                     "print([n for n in dir(s) if n.startswith('run_')])"],
])
def test_every_entry_point_starts_in_the_installed_environment(installed: Path, command: list[str]) -> None:
    venv = installed / ".venv" / "bin"
    done = subprocess.run([str(venv / command[0]), *command[1:]], cwd=installed, capture_output=True, text=True,
                          timeout=300, env={"PATH": f"{venv}:/usr/bin:/bin", "HOME": str(installed.parent)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower() or "run_train" in done.stdout


def test_the_entrypoint_runs_a_service_s_own_command_as_given(installed: Path) -> None:
    done = _run_in_image(installed, ["python", "-m", "predictor", "--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()


def test_the_entrypoint_runs_the_spark_operator_s_driver_and_executor_pods(installed: Path) -> None:
    """`driver` submits an application in client mode, `executor` joins its driver as Kubernetes' executor does.

    No Spark operator runs here: the driver (submitted through the entrypoint) runs a one-worker local
    cluster, and starts beside it one executor through the entrypoint, with the SPARK_* variables a
    driver on Kubernetes gives its executor pods. Tasks that ran in that executor see its pod name.
    """
    app = REPO / "tests" / "integration" / "spark_pods" / "driver_app.py"
    done = _run_in_image(installed, ["driver", "--master", "local-cluster[1,1,1024]", str(app),
                                     str(installed / "image-entrypoint.sh")], timeout=300,
                         env={"SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT "))
    assert len(result["block_managers"]) == 3, result  # the driver, the local cluster's executor, the entrypoint's
    assert "fraud-prep-exec-1" in result["pod_names"], result


def _run_in_image(installed: Path, args: list[str], timeout: float = 120,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``args`` given to the image's entrypoint, as a container's command would be, in the installed environment."""
    venv = installed / ".venv" / "bin"
    return subprocess.run([str(installed / "image-entrypoint.sh"), *args], cwd=installed, capture_output=True,
                          text=True, timeout=timeout,
                          env={"PATH": f"{venv}:/usr/bin:/bin", "HOME": str(installed.parent), **(env or {})})


def test_dev_only_packages_are_not_in_the_image(installed: Path) -> None:
    venv_python = installed / ".venv" / "bin" / "python"
    missing = subprocess.run([str(venv_python), "-c", "import pytest"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'pytest'" in missing.stderr
