"""Session fixtures that start real PostgreSQL and Redis servers from the Debian packages.

Nothing is skipped: a server that cannot start fails the tests that need it, with its log tail.
PostgreSQL refuses to run as root, so under root it runs as the `postgres` user from the package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from agentry_dev.cluster.network import free_ports

#: Seconds a server gets to accept connections before the fixture gives up.
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    return free_ports(1)[0]


def _stop(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaped."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    if process.poll() is None:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(f"PostgreSQL's {name} not found: apt-get install postgresql")
    return found[-1]


def _as_postgres_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL cluster with trust authentication for the `agentry` superuser."""

    port: int
    log: Path

    def url(self, database: str = "postgres") -> str:
        """A connection URL for `database`."""
        return f"postgresql://agentry@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database, so each test starts from nothing; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        _psql(self.url(), f'CREATE DATABASE "{name}"')
        return self.url(name)


def _wait_for_postgres(server: PostgresServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"PostgreSQL exited with {process.returncode}:\n{_tail(server.log)}")
        if _psql(server.url(), "SELECT 1", check=False).returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"PostgreSQL did not accept connections within {START_TIMEOUT}s:\n{_tail(server.log)}")


def _psql(url: str, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one statement with psql (fixtures are synchronous and may run inside a test's event loop)."""
    result = subprocess.run(
        [_pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
    )
    if check and result.returncode != 0:
        pytest.fail(f"psql {sql!r} failed: {result.stderr.strip()}")
    return result


@contextlib.contextmanager
def running_postgres(
    *, hosts: tuple[str, ...] = ("127.0.0.1",), clients: str | None = None
) -> Iterator[PostgresServer]:
    """Initdb into a temporary directory and run `postgres` on a free port of `hosts` (loopback by default).

    `clients`, a CIDR, is also trusted: the end-to-end tier lets the real node's pods in over its bridge.
    """
    root = Path(tempfile.mkdtemp(prefix="agentry-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "postgres.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    init = subprocess.run(
        _as_postgres_user([_pg_bin("initdb"), "-D", str(data), "-U", "agentry", "--auth=trust", "-E", "UTF8"]),
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        pytest.fail(f"initdb failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
    if clients is not None:
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all agentry {clients} trust\n")
    port = free_port()
    argv = [_pg_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets), "-h", ",".join(hosts)]
    argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(_as_postgres_user(argv), stdout=log_file, stderr=subprocess.STDOUT)
    server = PostgresServer(port=port, log=log)
    try:
        _wait_for_postgres(server, process)
        yield server
    finally:
        _stop(process, grace=20)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL on loopback."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh database on the session's PostgreSQL."""
    return postgres_server.create_database()


@dataclass(frozen=True)
class RedisServer:
    """A running Redis without persistence."""

    port: int
    log: Path

    @property
    def url(self) -> str:
        """The connection URL."""
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def running_redis(port: int | None = None) -> Iterator[RedisServer]:
    """`redis-server` on a loopback port (a free one unless given), no RDB snapshots, no AOF; stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: apt-get install redis-server")
    root = Path(tempfile.mkdtemp(prefix="agentry-redis-"))
    port, log = port or free_port(), root / "redis.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    server = RedisServer(port=port, log=log)
    try:
        _wait_for_redis(server, process)
        yield server
    finally:
        _stop(process, grace=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's Redis."""
    with running_redis() as server:
        yield server


def _wait_for_redis(server: RedisServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited with {process.returncode}:\n{_tail(server.log)}")
        with contextlib.suppress(redis.RedisError, OSError):
            client = redis.Redis.from_url(server.url, socket_timeout=1)
            try:
                client.ping()
                return
            finally:
                client.close()
        time.sleep(0.1)
    pytest.fail(f"redis-server did not accept connections within {START_TIMEOUT}s:\n{_tail(server.log)}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis, emptied before the test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url
