"""optuna-dashboard shows BOIL's per-trial user attributes (budgets, predictions)."""

from __future__ import annotations

from collections.abc import Iterator
import json
import math
from pathlib import Path
import threading
from typing import Any
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server

import optuna
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler


optuna_dashboard = pytest.importorskip("optuna_dashboard")

MAX_STEP = 10
BOIL_ATTRS = ("boil_budget", "boil_initial_budget", "boil_predicted_score")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def curve_objective(trial: optuna.Trial) -> float:
    """A cheap saturating learning curve whose ceiling depends on ``x`` and speed on ``y``."""
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    value = 0.0
    for step in range(1, MAX_STEP + 1):
        value = (1.0 - (x - 0.3) ** 2) * (1.0 - math.exp(-step * (0.2 + y)))
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite study of six BOIL trials (three start-up trials, then the model)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'boil.db'}"
    study = optuna.create_study(
        study_name="boil-dashboard",
        storage=url,
        direction="maximize",
        sampler=BOILSampler(seed=0, n_startup_trials=3),
        pruner=BOILPruner(min_resource=1, max_resource=MAX_STEP),
    )
    study.optimize(curve_objective, n_trials=6)
    return url


@pytest.fixture(scope="module")
def server(storage_url: str) -> Iterator[str]:
    """optuna-dashboard's WSGI app on a free loopback port, served from a thread."""
    app = optuna_dashboard.wsgi(storage_url)
    httpd: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read().decode())


def test_dashboard_serves_boil_user_attrs(storage_url: str, server: str) -> None:
    studies = get_json(f"{server}/api/studies")["study_summaries"]
    (summary,) = [s for s in studies if s["study_name"] == "boil-dashboard"]
    detail = get_json(f"{server}/api/studies/{summary['study_id']}?after=0")

    study = optuna.load_study(study_name="boil-dashboard", storage=storage_url)
    stored = {t.number: t.user_attrs for t in study.trials}
    served = {
        t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]
    }
    assert sorted(served) == sorted(stored) == list(range(6))
    for number, attrs in stored.items():
        assert "boil_budget" in attrs and "boil_initial_budget" in attrs
        # The dashboard serialises numbers with str(); values must match the storage exactly.
        assert served[number] == {k: str(v) for k, v in attrs.items()}
    # Trials decided by the model (after the three start-up trials) carry a prediction.
    assert all("boil_predicted_score" in stored[n] for n in range(3, 6))
    # The trial table can sort by the numeric BOIL columns.
    sortable = {a["key"]: a["sortable"] for a in detail["union_user_attrs"]}
    for key in BOIL_ATTRS:
        assert sortable[key] is True


def test_dashboard_page_is_served(server: str) -> None:
    with urllib.request.urlopen(f"{server}/dashboard", timeout=30) as response:
        assert response.status == 200
        assert b"<html" in response.read().lower()


def test_server_shuts_down(storage_url: str) -> None:
    app = optuna_dashboard.wsgi(storage_url)
    httpd = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_port
    get_json(f"http://127.0.0.1:{port}/api/studies")
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5)


def test_model_figure_is_saved_for_the_dashboard(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard")
    pytest.importorskip("plotly")
    import json

    import optuna

    from optuna_boil import BOILPruner
    from optuna_boil import BOILSampler
    from optuna_boil import publish_to_dashboard

    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'fig.db'}",
        direction="maximize",
        sampler=BOILSampler(seed=0, n_startup_trials=3),
        pruner=BOILPruner(min_resource=1, max_resource=6),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(1, 7):
            trial.report(x * step / 6, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=5)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert not any("boil-model" in k for k in attrs)
    assert publish_to_dashboard(study)
    chunks = sorted(
        (k for k in study._storage.get_study_system_attrs(study._study_id) if "boil-model" in k),
        key=lambda k: int(k.rsplit(":", 1)[1]),
    )
    assert chunks
    attrs = study._storage.get_study_system_attrs(study._study_id)
    figure = json.loads("".join(attrs[k] for k in chunks))
    names = {trace.get("name") for trace in figure["data"]}
    assert {"fitted", "BOIL default", "predicted score", "observed"} <= names
