"""Fuzzing the MES server's methods through a real asyncua client (Basic256Sha256
SignAndEncrypt, operator user): ``SelectRecipe`` and ``GetResults`` called with random
argument counts, types and values (extreme dates, NaN, huge integers, byte strings, arrays).
Every call ends in a good status or a Bad status naming the caller's mistake, never an
internal error or a dropped session, and the server still answers a valid call afterwards."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("asyncua")
from asyncua import ua  # noqa: E402

from line.mes.wiring import start_mes_server  # noqa: E402
from tests.opcua.fake_log import FakeLogWriter  # noqa: E402
from tests.opcua.helpers import RecipeCalls, make_client_cert, make_config, secure_client, trust  # noqa: E402

RECIPES = ["cap-a", "cap-b", "bad-recipe"]
ALLOWED = {  # the caller's mistakes, named
    ua.StatusCodes.BadInvalidArgument, ua.StatusCodes.BadArgumentsMissing, ua.StatusCodes.BadTooManyArguments,
    ua.StatusCodes.BadTypeMismatch, ua.StatusCodes.BadOutOfRange,
}  # fmt: skip
V = ua.VariantType


class Session:
    """A client on a private event loop thread, so hypothesis (synchronous) can call it."""

    def __init__(self, config: Any, cert: Path, key: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asyncio_fuzz_client", daemon=True)
        self.thread.start()
        self.client = self.run(secure_client(config, cert, key, "op"))
        self.run(self.client.connect())
        self.node, self.idx = self.run(self._station(config.station_id))

    async def _station(self, station_id: str) -> tuple[Any, int]:
        idx = await self.client.get_namespace_index("urn:linecheck")
        return await self.client.nodes.objects.get_child([f"{idx}:Stations", f"{idx}:{station_id}"]), idx

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, method: str, args: list[ua.Variant]) -> Any:
        return self.run(self.node.call_method(f"{self.idx}:{method}", *args))

    def close(self) -> None:
        try:
            self.run(self.client.disconnect(), timeout=20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("opcua-fuzz")
    cfg = make_config(tmp, select_recipe_timeout_s=5)
    log = FakeLogWriter(tmp / "results.db")
    t0 = time.time_ns() - 3600 * 10**9
    log.write_many([log.make(t0 + i * 10**9) for i in range(200)])
    cert, key = make_client_cert(tmp / "client", "client")
    trust(cfg, cert)
    sink = start_mes_server(cfg, tmp / "results.db", RECIPES, RecipeCalls())
    try:
        client = Session(cfg, cert, key)
        try:
            yield client
        finally:
            client.close()
    finally:
        sink.close()
        log.close()


# Dates a nanosecond int64 can hold (1678..2261); dates outside it are clamped (test below).
_dates = st.datetimes(
    datetime(1678, 1, 1), datetime(2261, 12, 31), timezones=st.just(timezone.utc)
) | st.sampled_from([datetime(1970, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc)])
EXTREME_DATES = [
    datetime(1601, 1, 1, 0, 0, 1, tzinfo=timezone.utc),
    datetime(9999, 12, 31, tzinfo=timezone.utc),
]
variants = st.one_of(
    st.text(max_size=40).map(lambda s: ua.Variant(s, V.String)),
    st.sampled_from(RECIPES).map(lambda s: ua.Variant(s, V.String)),
    _dates.map(lambda d: ua.Variant(d, V.DateTime)),
    st.integers(0, 2**32 - 1).map(lambda i: ua.Variant(i, V.UInt32)),
    st.integers(-(2**31), 2**31 - 1).map(lambda i: ua.Variant(i, V.Int32)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: ua.Variant(i, V.Int64)),
    st.integers(0, 2**64 - 1).map(lambda i: ua.Variant(i, V.UInt64)),
    st.floats().map(lambda f: ua.Variant(f, V.Double)),
    st.booleans().map(lambda b: ua.Variant(b, V.Boolean)),
    st.binary(max_size=40).map(lambda b: ua.Variant(b, V.ByteString)),
    st.just(ua.Variant()),
    st.lists(st.text(max_size=8), max_size=4).map(lambda xs: ua.Variant(xs, V.String)),
)


def _typed_get_results() -> st.SearchStrategy[list[ua.Variant]]:
    u32 = st.integers(0, 2**32 - 1).map(lambda i: ua.Variant(i, V.UInt32))
    return st.tuples(_dates.map(lambda d: ua.Variant(d, V.DateTime)), _dates.map(lambda d: ua.Variant(d, V.DateTime)),
                     u32, u32).map(list)  # fmt: skip


def _check(session: Session, method: str, args: list[ua.Variant]) -> None:
    try:
        session.call(method, args)
    except ua.UaStatusCodeError as exc:
        assert exc.code in ALLOWED, f"{method}{args} -> {ua.StatusCode(exc.code).name}"


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)


@SETTINGS
@given(args=st.lists(variants, max_size=3))
def test_select_recipe_random_arguments(session: Session, args: list[ua.Variant]) -> None:
    _check(session, "SelectRecipe", args)


@SETTINGS
@given(args=st.one_of(st.lists(variants, max_size=5), _typed_get_results()))
def test_get_results_random_arguments(session: Session, args: list[ua.Variant]) -> None:
    _check(session, "GetResults", args)


@pytest.mark.parametrize("lo, hi", [(EXTREME_DATES[0], datetime(2020, 1, 1, tzinfo=timezone.utc)),
                                    (datetime(2020, 1, 1, tzinfo=timezone.utc), EXTREME_DATES[1])])  # fmt: skip
def test_get_results_with_dates_beyond_int64_nanoseconds(
    session: Session, lo: datetime, hi: datetime
) -> None:
    rows, total = session.call("GetResults", [ua.Variant(lo, V.DateTime), ua.Variant(hi, V.DateTime),
                                              ua.Variant(0, V.UInt32), ua.Variant(10, V.UInt32)])  # fmt: skip
    assert isinstance(total, int)


def test_still_answers_after_the_fuzz(session: Session) -> None:
    now = datetime.now(timezone.utc)
    rows, total = session.call("GetResults", [ua.Variant(now - timedelta(hours=2), V.DateTime),
                                              ua.Variant(now, V.DateTime), ua.Variant(0, V.UInt32),
                                              ua.Variant(10, V.UInt32)])  # fmt: skip
    assert total == 200 and len(rows) == 10
    assert session.call("SelectRecipe", [ua.Variant("cap-b", V.String)]) == "switched to cap-b"
