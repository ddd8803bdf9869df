"""The `fraud` command: help everywhere, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fraud.cli import main

SUBCOMMANDS = [[], ["stack"], ["stack", "up"], ["stack", "down"], ["stack", "status"], ["produce"], ["scores"],
               ["demo"], ["data"], ["data", "generate"], ["pipeline"], ["pipeline", "run"], ["pipeline", "prep"],
               ["pipeline", "features"], ["pipeline", "compile"], ["models"], ["models", "list"], ["models", "show"],
               ["bench"], ["bench", "produce"], ["bench", "data"], ["bench", "pipeline"], ["bench", "predictor"], ["bench", "stream"], ["worker"]]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "fraud")
def test_every_command_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*words, "--help"]) == 0
    assert "Usage: fraud" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["produce", "--rate", "-5"], {}, "produce_rate (FRAUD_PRODUCE_RATE): Input should be greater than or equal to 0"),
        (["produce", "--count", "abc"], {}, "Invalid value for '--count'"),
        (["produce", "--count", "0"], {}, "Invalid value for '--count'"),
        (["produce", "--dataset", "/no/such/file.parquet"], {}, "does not exist"),
        (["produce", "--bogus"], {}, "No such option: --bogus"),
        (["scores", "--max", "-1"], {}, "Invalid value for '--max'"),
        (["frobnicate"], {}, "No such command 'frobnicate'"),
        (["stack", "status"], {"FRAUD_KAFKA_BOOTSTRAP": "no-port-here"}, "kafka_bootstrap (FRAUD_KAFKA_BOOTSTRAP)"),
        (["stack", "status"], {"FRAUD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs kafka_sasl_mechanism"),
        (["data", "generate", "--scenario", "drift"], {}, "needs --drift-day"),
        (["data", "generate", "--start", "2026-13-01"], {}, "Invalid value for '--start'"),
        (["bench", "pipeline", "--sizes", "a,b"], {}, "comma-separated list of numbers"),
        (["pipeline", "run", "--users", "5"], {}, "Invalid value for '--users'"),
        (["worker", "--loglevel", "loud"], {}, "'loud' is not one of debug, info, warning, error"),
        (["worker"], {"FRAUD_SCORER_BATCH_SIZE": "0"}, "scorer_batch_size (FRAUD_SCORER_BATCH_SIZE)"),
        (["bench", "stream", "--batch-sizes", "100,lots"], {}, "is not a comma-separated list of integers"),
        (["bench", "stream", "--workers", "1,0"], {}, "each must be at least 1"),
        (["demo", "--days", "1"], {}, "Invalid value for '--days'"),
        (["demo", "--rate", "-1"], {}, "Invalid value for '--rate'"),
    ],
)
def test_a_bad_argument_gets_one_line_not_a_traceback(args: list[str], env: dict[str, str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "fraud.cli", *args], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", **env}, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_py4j_s_root_logger_tracebacks_stay_out_of_the_cli_s_output_unless_verbose() -> None:
    """py4j logs a lost connection to a stopped Spark JVM on the root logger (`logging.info`), with a traceback."""
    import logging
    import os

    from fraud.cli import _configure

    def record(path: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.INFO, path, 1056, "Exception while sending command.", None, None)

    py4j = os.path.join("venv", "site-packages", "py4j", "java_gateway.py")
    ours = os.path.join("repo", "fraud", "labels.py")
    _configure(verbose=False)
    handler = logging.getLogger().handlers[0]
    assert not handler.filter(record(py4j))
    assert handler.filter(record(ours))
    _configure(verbose=True)
    assert logging.getLogger().handlers[0].filter(record(py4j))
