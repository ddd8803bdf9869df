"""`fraud monitor` and `fraud monitor --watch` as a user meets them: the live table, and one-line errors."""

from __future__ import annotations

import socket

import pytest
from rich.console import Console

from fraud.cli import main
from fraud.monitor_view import monitor_table
from tests.conftest import free_port


def _rendered(metrics: dict[str, float], top: int) -> str:
    console = Console(record=True, width=120)
    console.print(monitor_table(metrics, top=top))
    return console.export_text()


def test_the_table_shows_the_window_s_figures_and_the_most_drifted_features_first() -> None:
    metrics = {"fraud_monitor_pr_auc": 0.4321, "fraud_monitor_labels_in_window": 1_500.0,
               "fraud_monitor_precision": float("nan"), "fraud_monitor_model_version:3": 1.0,
               "fraud_monitor_model_version:2": 0.0, "fraud_monitor_psi:amount": 0.05,
               "fraud_monitor_psi:score": 0.31, "fraud_monitor_psi:distance_km": 0.12}
    text = _rendered(metrics, top=2)
    assert "model v3" in text and "0.432" in text and "1,500" in text
    lines = text.splitlines()
    assert "n/a" in next(line for line in lines if "precision" in line)
    assert text.index("PSI score") < text.index("PSI distance_km") and "PSI amount" not in text


def test_watch_without_a_running_monitor_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUD_MONITOR_METRICS_PORT", str(free_port()))
    assert main(["monitor", "--watch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fraud: no monitor answers on 127.0.0.1:") and err.count("\n") == 1


def test_a_second_monitor_on_a_taken_port_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("FRAUD_MONITOR_METRICS_PORT", str(taken.getsockname()[1]))
        assert main(["monitor"]) == 1
    assert "is taken (another monitor?)" in capsys.readouterr().err


def test_monitor_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--help"]) == 0
    assert "--watch" in capsys.readouterr().out
