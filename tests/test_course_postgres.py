"""nbgrader's gradebook on a real PostgreSQL server that the tests start and stop themselves.

No skips: when PostgreSQL is missing these tests fail with the fix (`make setup` installs it).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, inspect

from tests.support import pgserver
from tests.support.pgserver import PostgresServer, PostgresServerError, create_database, start_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module", autouse=True)
def _alembic_on_path() -> Iterator[None]:
    """nbgrader runs the `alembic` command for a new gradebook; find it beside this Python, as the CLI does."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        yield


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL server for this module, stopped at its end."""
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except PostgresServerError as error:
        pytest.fail(str(error), pytrace=False)
    with server:
        yield server


@pytest.fixture
def gradebook_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the module's server, as a SQLAlchemy URL."""
    name = "gb_" + re.sub(r"\W", "_", request.node.name).lower()[:50]
    create_database(psycopg2.connect(postgres.dsn), name)
    return postgres.url.rsplit("/", 1)[0] + "/" + name


def test_server_is_local_postgres(postgres: PostgresServer) -> None:
    assert re.fullmatch(r"postgresql\+psycopg2://marketlab@127\.0\.0\.1:\d+/gradebook", postgres.url)
    conn = psycopg2.connect(postgres.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone() == ("127.0.0.1",)
            cur.execute("SHOW fsync")
            assert cur.fetchone() == ("off",)
            cur.execute("SELECT current_database(), current_user")
            assert cur.fetchone() == ("gradebook", "marketlab")
    finally:
        conn.close()


def test_gradebook_creates_tables_and_reads_back_through_second_connection(gradebook_url: str) -> None:
    engine = create_engine(gradebook_url)
    try:
        assert inspect(engine).get_table_names() == []
        with Gradebook(gradebook_url, course_id="marketlab-test") as writer:
            tables = set(inspect(engine).get_table_names())
            assert {"assignment", "student", "submitted_assignment", "course", "alembic_version"} <= tables
            writer.add_assignment("02-workflow", duedate="2030-01-31 17:00:00")
            writer.add_student("ada", first_name="Ada", last_name="Lovelace", email="ada@example.com")
            writer.add_submission("02-workflow", "ada", timestamp="2030-01-30 09:15:00")
    finally:
        engine.dispose()

    with Gradebook(gradebook_url, course_id="marketlab-test") as reader:
        assert [a.name for a in reader.assignments] == ["02-workflow"]
        student = reader.find_student("ada")
        assert (student.first_name, student.last_name, student.email) == ("Ada", "Lovelace", "ada@example.com")
        submission = reader.find_submission("02-workflow", "ada")
        assert submission.student.id == "ada" and submission.assignment.name == "02-workflow"
        assert str(submission.timestamp).startswith("2030-01-30 09:15:00")
        assert submission.assignment.course_id == "marketlab-test"


def _submit(url: str, student: str, barrier: Any, results: Any) -> None:
    """Child process: wait for the sibling, then add one student and their submission."""
    try:
        with Gradebook(url, course_id="marketlab-test") as gradebook:
            barrier.wait(timeout=60)
            gradebook.add_student(student)
            gradebook.add_submission("01-prompts", student)
        results.put((student, "ok"))
    except BaseException:
        results.put((student, traceback.format_exc()))


def test_two_processes_write_submissions_concurrently(gradebook_url: str) -> None:
    with Gradebook(gradebook_url, course_id="marketlab-test") as gradebook:  # tables and assignment first
        gradebook.add_assignment("01-prompts")

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_submit, args=(gradebook_url, s, barrier, results)) for s in ("grace", "alan")]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == {"grace": "ok", "alan": "ok"}, "\n".join(outcomes.values())
    assert [w.exitcode for w in workers] == [0, 0]

    with Gradebook(gradebook_url, course_id="marketlab-test") as gradebook:
        assert sorted(s.id for s in gradebook.students) == ["alan", "grace"]
        assert sorted(s.student.id for s in gradebook.assignment_submissions("01-prompts")) == ["alan", "grace"]


def test_stop_really_stops_the_server(tmp_path: Path) -> None:
    started = time.monotonic()
    with start_postgres(tmp_path / "pg") as server:
        startup = time.monotonic() - started
        psycopg2.connect(server.dsn, connect_timeout=5).close()
    assert startup < 180, f"start-up took {startup:.1f}s"  # it does not hang: a bound for a busy machine, not a measure
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(server.dsn, connect_timeout=5)
    server.stop()  # idempotent
    assert not (Path(server.directory) / "data" / "postmaster.pid").exists()


def test_missing_postgres_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pgserver.shutil, "which", lambda name: None)
    monkeypatch.setattr(pgserver, "PG_LIB_ROOT", tmp_path / "no-postgresql")
    fix = r"PostgreSQL is not installed.*make setup.*apt-get install postgresql"
    with pytest.raises(PostgresServerError, match=fix):
        start_postgres(tmp_path / "pg")
