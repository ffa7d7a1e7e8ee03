"""Fuzzing the HMI's REST API with schemathesis from its own ``/openapi.json``: every documented
operation with generated (and invalid) parameters and bodies, as an admin (Basic auth) against
a real station with the HMI served by uvicorn. No request may produce a server error (5xx),
responses must match the documented content types, and the station keeps deciding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (REST fuzzing)")
from schemathesis.checks import content_type_conformance, not_a_server_error  # noqa: E402

from tests.hmi.helpers import PASSWORDS, Rig, running_rig  # noqa: E402

AUTH = ("admin", PASSWORDS["admin"])
KNOWN_DOC_GAPS = {"/metrics"}  # see test_metrics_content_type_is_documented


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with running_rig(tmp_path_factory.mktemp("hmi-fuzz")) as running:
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
