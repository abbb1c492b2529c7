from __future__ import annotations

import asyncio
import io
import sqlite3
from contextlib import closing
from pathlib import Path

import jwt
import pytest

from agent_runtime.security.audit import AuditTrail
from agent_runtime.security.auth import AuthError, build_authenticator
from agent_runtime.services.sqlite import SqliteDatabase
from agentry_api.v1alpha1 import AuthSpec
from agentry_cli.main import main

from .keys import HMAC_SECRET, rsa_pair


def test_token_from_a_secret_file_is_accepted_by_the_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "key"
    secret.write_bytes(HMAC_SECRET + b"\n")
    code = main(["token", "--secret-file", str(secret), "--subject", "ci", "--roles", "admin,data_analyst"])
    token = capsys.readouterr().out.strip()
    assert code == 0
    spec = AuthSpec.model_validate({"secretRef": {"name": "jwt", "key": "key"}})
    principal = build_authenticator(spec, HMAC_SECRET).authenticate(f"Bearer {token}")
    assert principal.subject == "ci" and principal.roles == {"admin", "data_analyst"}


def test_token_from_env_with_rs256(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JWT_KEY", rsa_pair().private_pem.decode())
    args = ["token", "--secret-env", "JWT_KEY", "--algorithm", "RS256", "--audience", "support", "--ttl", "60"]
    assert main(args) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), rsa_pair().public_pem, ["RS256"], audience="support")
    assert claims["exp"] - claims["iat"] == 60 and claims["roles"] == ["agent_operator"]


@pytest.mark.parametrize(
    ("ttl", "warned"), [(86_400, False), (86_401, True), (604_800, True)], ids=["default-max", "above", "week"]
)
def test_token_lifetime_above_the_default_maximum_is_minted_with_a_warning(
    ttl: int, warned: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A week is the longest any agent accepts; beyond a day only agents that raised the maximum do."""
    monkeypatch.setenv("GOOD_KEY", HMAC_SECRET.decode())
    assert main(["token", "--secret-env", "GOOD_KEY", "--ttl", str(ttl)]) == 0
    captured = capsys.readouterr()
    claims = jwt.decode(captured.out.strip(), HMAC_SECRET, ["HS256"], audience="agentry")
    assert claims["exp"] - claims["iat"] == ttl
    assert ("maxTokenLifetimeSeconds is at least" in captured.err) is warned
    spec = AuthSpec.model_validate({"secretRef": {"name": "jwt", "key": "key"}})
    authenticator = build_authenticator(spec, HMAC_SECRET)
    if warned:
        with pytest.raises(AuthError, match="longer than the 86400s"):
            authenticator.authenticate(f"Bearer {captured.out.strip()}")
    else:
        assert authenticator.authenticate(f"Bearer {captured.out.strip()}").subject == "local-user"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret-env", "UNSET_VAR_FOR_TEST"], "is not set"),
        (["--secret-env", "SHORT_KEY"], "at least 32 bytes"),
        (["--secret-env", "GOOD_KEY", "--roles", "root"], "--roles must name roles"),
        (["--secret-env", "GOOD_KEY", "--ttl", "0"], "ttl_seconds must be positive"),
        (["--secret-env", "GOOD_KEY", "--ttl", "604801"], "at most 604800"),
        (["--secret-env", "GOOD_KEY", "--ttl", str(10**30)], "at most 604800"),
        (["--secret-file", "/nonexistent/key"], "No such file"),
    ],
)
def test_token_errors_exit_2_without_echoing_the_key(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHORT_KEY", "tiny-secret")
    monkeypatch.setenv("GOOD_KEY", HMAC_SECRET.decode())
    assert main(["token", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert "tiny-secret" not in captured.err and HMAC_SECRET.decode() not in captured.err


async def write_trail(path: Path, count: int) -> None:
    database = SqliteDatabase(path=path)
    await database.start()
    audit = AuditTrail(database, agent="default/demo", stream=io.StringIO(), enabled=True)
    await audit.start()
    for index in range(count):
        await audit.record(principal=f"user-{index}", outcome="ok", latency_ms=index)
    await audit.close()
    await database.close()


async def test_audit_verify_on_the_runtime_sqlite_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agentry.db"
    await write_trail(path, 5)
    assert main(["audit", "verify", "--sqlite", str(path)]) == 0
    assert "audit chain intact: 5 records" in capsys.readouterr().out

    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE audit_log SET record = replace(record, 'user-2', 'user-x') WHERE seq = 3")
    assert main(["audit", "verify", "--sqlite", str(path)]) == 1
    assert "BROKEN at seq 3 after 2 good records" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("records", "tampering", "expected"),
    [
        (4, "DELETE FROM audit_log WHERE seq = 2", "BROKEN at seq 3"),  # a deleted row
        (2, "UPDATE audit_log SET record = 'not json' WHERE seq = 1", "seq 1"),  # an unreadable record
    ],
    ids=["deleted-row", "unreadable-record"],
)
async def test_audit_verify_detects_tampering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], records: int, tampering: str, expected: str
) -> None:
    path = tmp_path / "agentry.db"
    await write_trail(path, records)
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(tampering)
    assert main(["audit", "verify", "--sqlite", str(path)]) == 1
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sqlite", "/nonexistent/agentry.db"], "no SQLite database"),
        (["--database-url-env", "UNSET_DB_URL_FOR_TEST"], "is not set"),
        (["--database-url", "postgresql://nobody@127.0.0.1:1/none"], "cannot read the audit trail"),
    ],
)
def test_audit_verify_unreadable_trail_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", *args]) == 2
    assert message in capsys.readouterr().err


def test_audit_verify_on_an_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE audit_log (seq INTEGER, prev_hash TEXT, hash TEXT, record TEXT)")
    assert main(["audit", "verify", "--sqlite", str(path)]) == 0
    assert "empty" in capsys.readouterr().out


@pytest.mark.services
async def test_audit_verify_on_postgresql_shared_by_two_replicas(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncpg

    from agent_runtime.services.postgres import PostgresDatabase

    databases = [PostgresDatabase(url=postgres_url), PostgresDatabase(url=postgres_url)]
    trails = [AuditTrail(db, agent="default/demo", stream=io.StringIO(), enabled=True) for db in databases]
    for database, audit in zip(databases, trails, strict=True):
        await database.start()
        await audit.start()
    for index in range(6):
        await trails[index % 2].record(principal=f"user-{index}", outcome="ok", latency_ms=index / 3)
        await trails[index % 2].flush()
    for database, audit in zip(databases, trails, strict=True):
        await audit.close()
        await database.close()

    monkeypatch.setenv("AGENTRY_TEST_DB_URL", postgres_url)
    assert await asyncio.to_thread(main, ["audit", "verify", "--database-url-env", "AGENTRY_TEST_DB_URL"]) == 0
    assert "audit chain intact: 6 records" in capsys.readouterr().out

    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("UPDATE audit_log SET record = replace(record, 'user-4', 'user-x') WHERE seq = 5")
    finally:
        await connection.close()
    assert await asyncio.to_thread(main, ["audit", "verify", "--database-url", postgres_url]) == 1
    assert "BROKEN at seq 5" in capsys.readouterr().out
