"""A throwaway PostgreSQL server for gradebook tests: its own cluster, port and socket, no system service.

    with start_postgres(tmp_path / "pg") as server:
        Gradebook(server.url)

The cluster lives in the given folder, listens on a free port on 127.0.0.1 only, keeps its unix
socket in the same folder and trusts local connections, so no password is involved. PostgreSQL
refuses to run as root; under root the server runs as an unprivileged system user (`postgres` when
the Debian package made one, else `marketlab-pg`, created on first use).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from marketlab.errors import MarketlabError

DB_USER = "marketlab"
DB_NAME = "gradebook"
SERVICE_USER = "marketlab-pg"
INSTALL_HINT = "run `make setup` (as root it installs Debian's postgresql package) or `apt-get install postgresql`"
# A unix socket path may hold about 107 bytes; the socket file itself is ".s.PGSQL.<port>".
_MAX_SOCKET_DIR = 90
_START_ATTEMPTS = 3
PG_LIB_ROOT = Path("/usr/lib/postgresql")  # where Debian keeps each major version's binaries


class PostgresServerError(MarketlabError, RuntimeError):
    """PostgreSQL is missing or would not start; the message says what went wrong and how to fix it."""


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        # Debian links single binaries into PATH; pg_ctl must sit beside the real initdb and postgres.
        candidates += [Path(on_path).parent, Path(os.path.realpath(on_path)).parent]
    versions = PG_LIB_ROOT.glob("*/bin")
    candidates += sorted(versions, key=lambda p: _version_key(p.parent.name), reverse=True)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresServerError(
        f"PostgreSQL is not installed: no initdb/pg_ctl/postgres on PATH or in {PG_LIB_ROOT}/*/bin. "
        f"To fix it, {INSTALL_HINT}."
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (-1,)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log was written)"
    return "\n".join(text.splitlines()[-lines:]) or "(the server log is empty)"


class _Runner:
    """Runs PostgreSQL's tools as the current user, or as an unprivileged user when we are root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.account: pwd.struct_passwd | None = _service_account() if os.geteuid() == 0 else None

    @property
    def user_name(self) -> str:
        return self.account.pw_name if self.account else pwd.getpwuid(os.geteuid()).pw_name

    def run(self, tool: str, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        extra: dict[str, Any] = {}
        if self.account:
            env.update(HOME=str(cwd), USER=self.account.pw_name, LOGNAME=self.account.pw_name)
            extra = dict(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        return subprocess.run(
            [str(self.bindir / tool) if (self.bindir / tool).exists() else tool, *args],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **extra,
        )  # fmt: skip

    def own(self, path: Path) -> None:
        if self.account:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def can_use(self, folder: Path) -> bool:
        if not self.account:
            return True
        return self.run("test", "-w", str(folder), "-a", "-x", str(folder), cwd=Path("/")).returncode == 0


def _service_account() -> pwd.struct_passwd:
    for name in ("postgres", SERVICE_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin",
         "--comment", "marketlab throwaway PostgreSQL", SERVICE_USER],
        capture_output=True, text=True,
    )  # fmt: skip
    try:
        return pwd.getpwnam(SERVICE_USER)  # also covers another process creating it at the same moment
    except KeyError:
        raise PostgresServerError(
            "PostgreSQL refuses to run as root, and the unprivileged user "
            f"{SERVICE_USER!r} could not be created ({useradd}: {(result.stderr or result.stdout).strip()}).\n"
            f"Create it with `useradd --system --no-create-home {SERVICE_USER}`, or run the tests as a normal user."
        ) from None


class PostgresServer:
    """A running throwaway PostgreSQL cluster; `stop()` or leave the `with` block to shut it down."""

    def __init__(self, *, runner: _Runner, base: Path, port: int, relocated: bool) -> None:
        self._runner = runner
        self.directory = base
        self.data_dir = base / "data"
        self.log_path = base / "server.log"
        self.port = port
        self.user = DB_USER
        self.database = DB_NAME
        self.os_user = runner.user_name
        self.url = f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"
        self._stopped = False
        self._finalizer = weakref.finalize(self, _stop_cluster, runner, self.data_dir, os.getpid(), relocated)

    @property
    def dsn(self) -> str:
        """The libpq connection string, for psycopg2.connect()."""
        return f"host=127.0.0.1 port={self.port} user={DB_USER} dbname={DB_NAME}"

    def stop(self) -> None:
        """Shut the server down (pg_ctl stop -m fast); calling it again does nothing."""
        if not self._stopped:
            self._stopped = True
            self._finalizer()

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return f"<PostgresServer {self.url} in {self.directory} ({state})>"


def _stop_cluster(runner: _Runner, data_dir: Path, owner_pid: int, relocated: bool) -> None:
    if os.getpid() != owner_pid:  # a forked child must not stop its parent's server
        return
    if (data_dir / "postmaster.pid").exists():
        stop = ("stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", "30")
        result = runner.run("pg_ctl", *stop, cwd=data_dir.parent)
        if result.returncode != 0 and (data_dir / "postmaster.pid").exists():
            raise PostgresServerError(
                f"pg_ctl could not stop the server in {data_dir}: {(result.stderr or result.stdout).strip()}"
            )
    if relocated:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def start_postgres(directory: Path) -> PostgresServer:
    """Create a cluster in `directory`, start it on a free 127.0.0.1 port and create the database."""
    runner = _Runner(find_bindir())
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    runner.own(directory)
    base, relocated = directory, False
    if len(str(directory)) > _MAX_SOCKET_DIR or not runner.can_use(directory):
        # The socket path would be too long, or (as root) the server's user cannot reach `directory`,
        # e.g. under pytest's private /tmp/pytest-of-root (mode 700). Use a short private folder instead.
        base, relocated = Path(tempfile.mkdtemp(prefix="marketlab-pg-")), True
        runner.own(base)
        (directory / "cluster").unlink(missing_ok=True)
        (directory / "cluster").symlink_to(base)
    elif (base / "data").exists():
        raise PostgresServerError(f"{base / 'data'} already exists; start_postgres() needs a fresh folder.")
    try:
        port = _init_and_start(runner, base)
    except BaseException:
        if relocated:
            shutil.rmtree(base, ignore_errors=True)
        raise
    server = PostgresServer(runner=runner, base=base, port=port, relocated=relocated)
    try:
        _create_database(port)
    except BaseException:
        server.stop()
        raise
    return server


def _init_and_start(runner: _Runner, base: Path) -> int:
    """Run initdb and pg_ctl start in `base`; return the port the server listens on."""
    data_dir, log_path = base / "data", base / "server.log"
    init = runner.run(
        "initdb", "-D", str(data_dir), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        cwd=base,
    )  # fmt: skip
    if init.returncode != 0:
        raise PostgresServerError(
            f"initdb failed in {data_dir} (running as {runner.user_name}):\n{(init.stderr or init.stdout).strip()}"
        )
    socket_dir = str(base).replace("'", "''")
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# marketlab throwaway server: local only, fast, not durable\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "shared_buffers = 16MB\nmax_connections = 40\nmax_wal_senders = 0\nwal_level = minimal\n"
            "logging_collector = off\n"
        )

    for _ in range(_START_ATTEMPTS):
        port = _free_port()
        seen = log_path.stat().st_size if log_path.exists() else 0
        started = runner.run(
            "pg_ctl", "start", "-D", str(data_dir), "-l", str(log_path), "-w", "-t", "120", "-o", f"-p {port}",
            cwd=base, timeout=180,  # pg_ctl polls; the limits are for a busy machine
        )  # fmt: skip
        if started.returncode == 0:
            return port
        if (data_dir / "postmaster.pid").exists():  # e.g. pg_ctl gave up waiting: do not leave it running
            runner.run("pg_ctl", "stop", "-D", str(data_dir), "-m", "immediate", "-w", cwd=base)
        if log_path.exists():
            with open(log_path, "rb") as log:
                log.seek(seen)
                if b"Address already in use" in log.read():  # another process took the port meanwhile
                    continue
        raise PostgresServerError(
            f"PostgreSQL did not start in {data_dir} (running as {runner.user_name}): "
            f"{(started.stderr or started.stdout).strip()}\nLast lines of the server log:\n{_tail(log_path)}"
        )
    raise PostgresServerError(
        f"PostgreSQL found no free port in {_START_ATTEMPTS} tries. "
        f"Last lines of the server log:\n{_tail(log_path)}"
    )


def _create_database(port: int) -> None:
    import psycopg2

    deadline = time.monotonic() + 60  # polled: a limit for a busy machine, not a measure
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, dbname="postgres", connect_timeout=5)
            break
        except psycopg2.OperationalError as error:
            if time.monotonic() > deadline:
                raise PostgresServerError(f"PostgreSQL started but refuses connections on port {port}: {error}")
            time.sleep(0.1)
    create_database(conn, DB_NAME)


def create_database(conn: Any, name: str) -> None:
    """CREATE DATABASE through an open psycopg2 connection (outside a transaction, as it must be), then close it."""
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
