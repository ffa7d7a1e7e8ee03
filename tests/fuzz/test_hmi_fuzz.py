"""Fuzzing the HMI's REST API with schemathesis from its own ``/openapi.json``: every documented
operation with generated (and invalid) parameters and bodies, as an admin (Basic auth) against
a real station with the HMI served by uvicorn. No request may produce a server error (5xx),
responses must match the documented content types, and the station keeps deciding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (REST fuzzing)")
from schemathesis.checks import content_type_conformance, not_a_server_error  # noqa: E402

from line.login_guard import ThrottlePolicy  # noqa: E402
from tests.hmi.helpers import PASSWORDS, Rig, running_rig  # noqa: E402

AUTH = ("admin", PASSWORDS["admin"])
KNOWN_DOC_GAPS = {"/metrics"}  # see test_metrics_content_type_is_documented


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    # the login throttle would soon answer every request of the fuzzer (one address) with 429;
    # it has its own probes below and in tests/hmi/test_login_guard.py
    lenient = ThrottlePolicy(free_failures=10**9, lockout_after=10**9)
    with running_rig(tmp_path_factory.mktemp("hmi-fuzz"), login_policy=lenient) as running:
        yield running


@pytest.mark.allow_leaks  # uvicorn's AnyIO worker threads belong to the module's HMI
def test_rest_api(rig: Rig) -> None:
    # One test over every operation (schemathesis' own pytest plugin does not run under pytest 9:
    # it reads ``Function._nodeid``); hypothesis drives each operation's strategy directly.
    schema = schemathesis.openapi.from_url(f"{rig.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            checks = (
                [not_a_server_error]
                if case.path in KNOWN_DOC_GAPS
                else [not_a_server_error, content_type_conformance]
            )
            case.call_and_validate(auth=AUTH, checks=checks)

        try:
            exercise()
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.allow_leaks
def test_station_still_deciding_after_the_fuzz(rig: Rig) -> None:
    before = int(rig.station.stats.counts.get("verdicts", 0))
    rig.wait(lambda: int(rig.station.stats.counts.get("verdicts", 0)) >= before + 10)
    assert Path(rig.station.result_log.db_path).exists()


@pytest.mark.allow_leaks
def test_metrics_content_type_is_documented(rig: Rig) -> None:
    schema = schemathesis.openapi.from_url(f"{rig.url}/openapi.json")
    operation = schema["/metrics"]["GET"]

    @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def exercise(case: Any) -> None:
        case.call_and_validate(auth=AUTH, checks=[content_type_conformance])

    exercise()


# --- attack probes (issue 21): they stay fixed ---------------------------------------------

@pytest.mark.allow_leaks
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(name=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"), min_size=1,
                    max_size=600))  # fmt: skip
def test_image_names_never_a_server_error(rig: Rig, name: str) -> None:
    with httpx.Client(base_url=rig.url, auth=AUTH, timeout=30) as http:
        reply = http.get("/api/images/" + quote(name, safe="/"))
    assert reply.status_code < 500, (name, reply.status_code, reply.text[:200])
    if len(name) > 255 and "/" not in name and "." not in name:
        assert reply.status_code == 400, (name, reply.status_code)


@pytest.mark.allow_leaks
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(value=st.binary(min_size=1, max_size=300))
def test_garbage_basic_headers_never_a_server_error(rig: Rig, value: bytes) -> None:
    import base64

    header = b"Basic " + base64.b64encode(value)
    with httpx.Client(base_url=rig.url, timeout=30) as http:
        reply = http.get("/api/me", headers={"Authorization": header.decode("ascii")})
    assert reply.status_code in (401, 429, 503), reply.status_code


@pytest.mark.allow_leaks
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(host=st.from_regex(r"[a-z][a-z0-9.-]{0,40}\.[a-z]{2,6}", fullmatch=True))
def test_foreign_host_names_refused(rig: Rig, host: str) -> None:
    with httpx.Client(base_url=rig.url, auth=AUTH, timeout=30) as http:
        reply = http.get("/api/me", headers={"Host": host, "Origin": f"http://{host}"})
    assert reply.status_code == 400, (host, reply.status_code)
