"""Floods at the OPC UA MES endpoint.

- Passwords: 4 asyncua clients guess the operator's password during a 50 parts/s demo run:
  every guess is refused, the station's fail-safe share stays at the share of the same run
  without the flood, and another user with the right password logs in from another address
  while the flood goes on. That the refused guesses cost no password check is counted in
  tests/opcua/test_login_throttle.py.
- Certificates: more untrusted client certificates than ``pki/rejected`` keeps, each offered by
  a real client: the folder stays within its caps and a trusted client still connects."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from line.mes.security import TrustListValidator
from line.mes.wiring import start_mes_server
from line.passwords import hash_password
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import (
    CLIENT_URI,
    FromOtherAddress,
    RecipeCalls,
    make_client_cert,
    make_config,
    secure_client,
    trust,
)
from tests.reliability.demo_run import demo_config, fail_safe_share, run_demo

pytestmark = pytest.mark.slow

MES_PASSWORD = "mes-reader-pw"


def add_reader(data: dict[str, Any]) -> None:
    data["opcua_server"]["users"]["mes"] = {"role": "reader", "password_hash": hash_password(MES_PASSWORD)}


async def login(endpoint: str, user: str, password: str) -> str:
    client = Client(endpoint, timeout=10)
    client.set_user(user)
    client.set_password(password)
    return await outcome(client)


async def outcome(client: Client) -> str:
    try:
        async with client:
            await client.nodes.objects.get_children()
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__
    return "connected"


def test_opcua_password_flood_does_not_move_the_fail_safe_share(tmp_path: Path) -> None:
    config = demo_config(tmp_path, add_reader)
    baseline = run_demo(config)

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    seen: dict[str, str] = {}

    def flood(listening: dict[str, Any], stop: threading.Event) -> None:
        endpoint = listening["opcua"]

        def guesser(i: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    outcome = asyncio.run(login(endpoint, "operator", f"guess-{i}-{n}"))
                except (OSError, asyncio.TimeoutError):
                    break  # the run ended
                with lock:
                    outcomes[outcome] += 1

        threads = [threading.Thread(target=guesser, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while sum(outcomes.values()) < 20 and not stop.wait(0.1):
            pass
        loop = FromOtherAddress()  # during the flood, from another host: another user
        try:
            seen["mes"] = loop.run_until_complete(login(endpoint, "mes", MES_PASSWORD))
        finally:
            loop.close()
        for t in threads:
            t.join()

    flooded = run_demo(config, flood)
    print(f"baseline {baseline['fail_safe']}/{baseline['parts']} fail-safe, flooded "
          f"{flooded['fail_safe']}/{flooded['parts']}; outcomes {dict(outcomes)}")  # fmt: skip
    assert sum(outcomes.values()) >= 20
    assert set(outcomes) == {"BadUserAccessDenied"}, outcomes
    assert seen["mes"] == "connected"
    assert fail_safe_share(flooded) <= fail_safe_share(baseline) + 0.05, (baseline, flooded)


def test_untrusted_certificate_flood_leaves_rejected_capped(tmp_path: Path) -> None:
    defaults = inspect.signature(TrustListValidator).parameters
    cap, cap_bytes = defaults["max_rejected"].default, defaults["max_rejected_bytes"].default
    cfg = make_config(tmp_path)
    cert, key = make_client_cert(tmp_path / "client", "client")
    trust(cfg, cert)
    log = FakeLogWriter(tmp_path / "results.db")
    sink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], RecipeCalls())
    try:
        # one key, many certificates (signing is cheap; key generation is not)
        strangers = tmp_path / "strangers"
        strangers.mkdir()
        stranger_key = cert_gen.generate_private_key()
        key_file = strangers / "key.pem"
        key_file.write_bytes(cert_gen.dump_private_key_as_pem(stranger_key))
        refusals: Counter[str] = Counter()
        for i in range(cap + 10):
            stranger = cert_gen.generate_self_signed_app_certificate(
                stranger_key, f"stranger-{i}", {"organizationName": "elsewhere"},  # type: ignore[arg-type]
                [cert_gen.x509.UniformResourceIdentifier(CLIENT_URI), cert_gen.x509.DNSName("localhost")],
                [ExtendedKeyUsageOID.CLIENT_AUTH], days=30,
            )  # fmt: skip
            cert_file = strangers / f"stranger-{i}.der"
            cert_file.write_bytes(stranger.public_bytes(Encoding.DER))

            async def offer(cert_file: Path = cert_file) -> str:
                return await outcome(await secure_client(cfg, cert_file, key_file, "mes"))

            refusals[asyncio.run(offer())] += 1
        kept = list(cfg.rejected_dir.glob("*.der"))

        async def trusted() -> str:
            return await outcome(await secure_client(cfg, cert, key, "mes"))

        after = asyncio.run(trusted())
    finally:
        sink.close()
        log.close()
    assert refusals == {"BadCertificateUntrusted": cap + 10}, refusals
    assert len(kept) == cap
    assert sum(p.stat().st_size for p in kept) <= cap_bytes
    assert after == "connected"
