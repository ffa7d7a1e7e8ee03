"""Config rules (production = Basic256Sha256 SignAndEncrypt only, no anonymous), password
hashes, and the server certificate created on first start and kept afterwards."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from line.mes.config import OpcUaServerConfig, hash_password, verify_password
from line.mes.security import ensure_server_certificate

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "opcua-production.example.yaml"
HASH = hash_password("pw", n=2**10)  # cheap cost for tests; the default is 2**14


def test_hash_roundtrip_and_salted() -> None:
    assert verify_password("pw", HASH)
    assert not verify_password("PW", HASH)
    assert hash_password("pw", n=2**10) != HASH  # salted
    assert not verify_password("pw", "scrypt$1$2$3$bad$bad")  # malformed never matches
    assert not verify_password("pw", "plain")


def _cfg(**kw: object) -> OpcUaServerConfig:
    data: dict[str, object] = {"users": {"mes": {"password_hash": HASH, "role": "reader"}}}
    data.update(kw)
    return OpcUaServerConfig.model_validate(data)


def test_production_refuses_anonymous_and_weaker_policies() -> None:
    assert _cfg().security_policies == ("Basic256Sha256_SignAndEncrypt",)
    with pytest.raises(ValidationError, match="anonymous"):
        _cfg(allow_anonymous=True)
    with pytest.raises(ValidationError, match="only Basic256Sha256_SignAndEncrypt"):
        _cfg(security_policies=["None", "Basic256Sha256_SignAndEncrypt"])
    with pytest.raises(ValidationError, match="only Basic256Sha256_SignAndEncrypt"):
        _cfg(security_policies=["Basic256Sha256_Sign"])


def test_demo_anonymous_only_on_loopback() -> None:
    demo = _cfg(profile="demo", allow_anonymous=True, security_policies=["None"])
    assert demo.allow_anonymous
    with pytest.raises(ValidationError, match="loopback"):
        _cfg(profile="demo", allow_anonymous=True, endpoint="opc.tcp://0.0.0.0:4840/x")


def test_user_hash_format_checked() -> None:
    with pytest.raises(ValidationError, match="hash_password"):
        _cfg(users={"mes": {"password_hash": "secret", "role": "reader"}})
    with pytest.raises(ValidationError, match="nobody"):
        _cfg(users={})


def test_example_config_is_production_only() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())["opcua_server"]
    # its hashes are of passwords printed in the file: refused under profile production (issue 21)
    with pytest.raises(ValidationError, match=r"\['line-lead', 'mes'\] have a password published"):
        OpcUaServerConfig.model_validate(data)
    for user in data["users"].values():
        user["password_hash"] = hash_password("a site password", n=2**4)
    cfg = OpcUaServerConfig.model_validate(data)
    assert cfg.profile == "production"
    assert cfg.security_policies == ("Basic256Sha256_SignAndEncrypt",)
    assert not cfg.allow_anonymous
    assert {u.role for u in cfg.users.values()} == {"reader", "operator"}


def test_server_certificate_created_once(tmp_path: Path) -> None:
    cfg = _cfg(state_dir=tmp_path / "state")
    cert, key = asyncio.run(ensure_server_certificate(cfg))
    first = (cert.read_bytes(), key.read_bytes())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cfg.trusted_dir.is_dir() and cfg.rejected_dir.is_dir()
    asyncio.run(ensure_server_certificate(cfg))
    assert (cert.read_bytes(), key.read_bytes()) == first  # reused, not re-issued
