"""Fixtures for the distributed tests: one uniquely named study per backend, deleted afterwards.

Server backends (PostgreSQL, MariaDB) are probed once per session. When a server does not
answer, its tests are skipped with the reason, except under ``CI=true``, where they fail: CI
must really run them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import json
import os
from pathlib import Path
import subprocess
import sys
import uuid

import optuna
import pytest

from tests.distributed._dist_worker import StudySpec


SERVER_URLS = {
    "postgresql": os.environ.get(
        "BOIL_TEST_POSTGRESQL_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("BOIL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
WORKER = Path(__file__).with_name("_dist_worker.py")
_probed: dict[str, str | None] = {}


def _probe(url: str) -> str | None:
    """``None`` if the server answers ``SELECT 1`` within a few seconds, else the error."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as e:  # noqa: BLE001 - any failure means "server not usable"
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def require_server(backend: str) -> str:
    """The server's URL; skip (or, under ``CI=true``, fail) if it does not answer."""
    url = SERVER_URLS[backend]
    if backend not in _probed:
        _probed[backend] = _probe(url)
    error = _probed[backend]
    if error is not None:
        message = f"{backend} server at {url} is not reachable ({error})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so database tests must run, not be skipped.")
        pytest.skip(message)
    return url


def _make(backend: str, location: str) -> Iterator[StudySpec]:
    spec = StudySpec(backend, location, f"boil-dist-{uuid.uuid4().hex[:12]}")
    storage = spec.storage()
    optuna.create_study(study_name=spec.study_name, storage=storage, direction="maximize")
    yield spec
    optuna.delete_study(study_name=spec.study_name, storage=storage)


@pytest.fixture
def postgresql_study() -> Iterator[StudySpec]:
    yield from _make("postgresql", require_server("postgresql"))


@pytest.fixture
def mariadb_study() -> Iterator[StudySpec]:
    yield from _make("mariadb", require_server("mariadb"))


@pytest.fixture
def sqlite_study(tmp_path: Path) -> Iterator[StudySpec]:
    yield from _make("sqlite", f"sqlite:///{tmp_path / 'study.db'}")


@pytest.fixture
def journal_study(tmp_path: Path) -> Iterator[StudySpec]:
    yield from _make("journal", str(tmp_path / "journal.log"))


@pytest.fixture
def study_spec(request: pytest.FixtureRequest) -> StudySpec:
    """The study of the backend named by the test's ``backend`` parameter."""
    return request.getfixturevalue(f"{request.param}_study")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``_dist_worker.py`` processes; any still alive at teardown are killed."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: dict[str, object]) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
