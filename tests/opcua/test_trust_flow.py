"""First deployment with an empty trust folder: the MES client's certificate is refused with a
security status (not BadInternalError) and stored in ``rejected/`` for an admin to approve;
once moved to ``trusted/`` it connects. The rejected folder stays bounded under a flood."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto

from line.mes.security import TrustListValidator
from line.mes.wiring import start_mes_server
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import RecipeCalls, make_client_cert, make_config, secure_client


async def _status(client: object) -> str:
    try:
        async with client:  # type: ignore[attr-defined]
            return "connected"
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__
    except Exception as exc:
        return f"refused: {type(exc).__name__}: {exc}"


def test_first_deployment_untrusted_client_is_stored_for_approval(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    log = FakeLogWriter(tmp_path / "results.db")
    cert, key = make_client_cert(tmp_path / "client", "client")
    sink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], RecipeCalls())
    try:
        assert not list(cfg.trusted_dir.glob("*"))
        first = asyncio.run(_status(asyncio.run(secure_client(cfg, cert, key, "op"))))
        assert first in ("BadCertificateUntrusted", "BadSecurityChecksFailed"), first
        stored = list(cfg.rejected_dir.glob("*.der"))
        assert len(stored) == 1
        stored[0].rename(cfg.trusted_dir / stored[0].name)  # the admin approves it
        assert asyncio.run(_status(asyncio.run(secure_client(cfg, cert, key, "op")))) == "connected"
    finally:
        sink.close()
        log.close()


def test_rejected_folder_is_capped_oldest_out(tmp_path: Path) -> None:
    (tmp_path / "trusted").mkdir()
    capped = TrustListValidator(tmp_path / "trusted", tmp_path / "rejected", max_rejected=3, max_rejected_bytes=10**6)
    tiny = TrustListValidator(tmp_path / "trusted", tmp_path / "rejected-tiny", max_rejected=100, max_rejected_bytes=1)
    certs = [make_client_cert(tmp_path / f"c{i}", f"stranger{i}")[0] for i in range(5)]

    async def offer(validator: TrustListValidator, path: Path) -> None:
        try:
            await validator(await uacrypto.load_certificate(path), ua.ApplicationDescription())
        except ServiceError as exc:
            assert exc.code == ua.StatusCodes.BadCertificateUntrusted
        else:
            raise AssertionError("an untrusted certificate was accepted")

    for i, cert in enumerate(certs):
        asyncio.run(offer(capped, cert))
        stored = tmp_path / "rejected" / f"{hashlib.sha1(cert.read_bytes()).hexdigest()}.der"  # noqa: S324
        os.utime(stored, ns=(i * 10**9, i * 10**9))  # age set explicitly: no reliance on the clock's resolution
    kept = {p.name for p in (tmp_path / "rejected").glob("*.der")}
    assert kept == {f"{hashlib.sha1(c.read_bytes()).hexdigest()}.der" for c in certs[2:]}  # noqa: S324 (the newest three)
    asyncio.run(offer(tiny, certs[0]))
    assert not list((tmp_path / "rejected-tiny").glob("*.der"))  # over the byte cap: nothing kept


def test_unknown_opcua_user_is_checked_against_a_dummy_with_the_same_parameters(tmp_path: Path) -> None:
    import line.mes.security as security
    from line.passwords import parse_hash

    cfg = make_config(tmp_path)
    manager = security.ConfigUserManager(cfg)
    checked: list[str] = []
    real = security.verify_password

    def recording(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    security.verify_password = recording  # type: ignore[assignment]
    try:
        known = next(iter(cfg.users))
        assert manager.get_user(None, known, "guess") is None  # type: ignore[arg-type]
        assert manager.get_user(None, "intruder", "guess") is None  # type: ignore[arg-type]
    finally:
        security.verify_password = real
        manager.close()
    assert len(checked) == 2
    assert parse_hash(checked[1])[:3] == parse_hash(checked[0])[:3]


def test_node_opcua_client_first_deployment(tmp_path: Path) -> None:
    """The same flow with a foreign client: node-opcua is refused with a security status (not
    BadInternalError), its certificate waits in ``rejected/``; approved, it gets its session."""
    import json
    import subprocess

    import pytest

    from tests.opcua.helpers import PASSWORDS
    from tests.opcua.test_node_mes import NODE, NODE_DIR, NODE_URI, node_client_cert

    if NODE is None or not (NODE_DIR / "node_modules" / "node-opcua-client").is_dir():
        pytest.skip("needs node and `npm ci --prefix tests/node`")
    cfg = make_config(tmp_path)
    log = FakeLogWriter(tmp_path / "results.db")
    sink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], RecipeCalls())
    cert, key = node_client_cert(tmp_path / "node")
    opts = {
        "endpoint": cfg.endpoint, "stationId": cfg.station_id, "applicationUri": NODE_URI,
        "certFile": str(cert), "keyFile": str(key), "pkiDir": str(tmp_path / "node" / "pki"),
        "serverCertDer": str(cfg.state_dir / "pki" / "own" / "server_cert.der"),
        "operator": "op", "operatorPassword": PASSWORDS["op"], "reader": "mes", "readerPassword": PASSWORDS["mes"],
        "expectedEvents": 0, "eventTimeoutMs": 1000, "fromIso": "2020-01-01T00:00:00Z",
        "toIso": "2020-01-02T00:00:00Z", "pageSize": 64, "recipe": "cap-a",
    }  # fmt: skip
    try:
        first = subprocess.run([str(NODE), "mes_client.mjs", json.dumps(opts)], cwd=NODE_DIR, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
        output = first.stdout + first.stderr
        assert first.returncode != 0
        assert "BadInternalError" not in output
        assert "BadCertificateUntrusted" in output or "BadSecurityChecksFailed" in output, output[-3000:]
        stored = list(cfg.rejected_dir.glob("*.der"))
        assert len(stored) == 1
        stored[0].rename(cfg.trusted_dir / stored[0].name)  # the admin approves it
        second = subprocess.run([str(NODE), "mes_client.mjs", json.dumps(opts)], cwd=NODE_DIR, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert "SUBSCRIBED" in second.stdout, (second.stdout + second.stderr)[-3000:]
    finally:
        sink.close()
        log.close()
