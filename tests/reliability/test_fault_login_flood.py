"""A login flood at the HMI (8 threads guessing an operator's password) during a 50 parts/s demo
run: the password checks it can cause are bounded (throttled, then refused before hashing), the
station's fail-safe share stays at the share of the same run without the flood, and a real user
from another address still logs in afterwards."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.demo_run import demo_config, run_demo

pytestmark = pytest.mark.slow


def test_login_flood_does_not_move_the_fail_safe_share(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    baseline = run_demo(config)

    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def flood(listening: dict[str, Any], stop: threading.Event) -> None:
        url = listening["hmi"]

        def guesser(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        code = http.post("/api/login", json={"username": "operator", "password": f"guess-{i}-{n}"}).status_code
                    except httpx.HTTPError:
                        break  # the run ended
                    with lock:
                        codes[code] += 1

        threads = [threading.Thread(target=guesser, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    flooded = run_demo(config, flood)
    parts_b, parts_f = int(baseline["parts"]), int(flooded["parts"])  # type: ignore[call-overload]
    share_b = int(baseline["fail_safe"]) / parts_b  # type: ignore[call-overload]
    share_f = int(flooded["fail_safe"]) / parts_f  # type: ignore[call-overload]
    print(f"baseline {baseline['fail_safe']}/{parts_b} fail-safe, flooded {flooded['fail_safe']}/{parts_f}; codes {dict(codes)}")
    assert sum(codes.values()) >= 8  # every guesser got answers (held ones: one per hold)
    assert codes[401] <= 12  # password checks: the free ones and the delayed ones only
    assert codes[429] + codes[503] >= sum(codes.values()) - codes[401]
    # two demo runs, one after the other: on a machine other work keeps busy the share moves
    # by a few points between runs on its own (47 % and 52 % under stress-ng, no flood effect
    # in the held-then-429 answers); the flood this guards against took it from 0 to 98 %
    assert share_f <= share_b + 0.10, (baseline, flooded)


def test_real_user_logs_in_from_another_address_after_a_flood(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    seen: dict[str, object] = {}

    def flood_then_login(listening: dict[str, Any], stop: threading.Event) -> None:
        url = listening["hmi"]
        codes: list[int] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(8):
                codes.append(http.post("/api/login", json={"username": "operator", "password": f"guess{len(codes)}"}).status_code)
        seen["flood"] = codes
        # another address on the loopback network (127.0.0.2) and another user: not throttled
        other = httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            seen["other_address"] = other.post("/api/login", json={"username": "viewer", "password": "viewer-demo"}).status_code

    # long enough for eight held logins and one more on a machine other work keeps busy (40 s
    # ended the demo before the last login under stress-ng)
    run_demo(config, flood_then_login, seconds=120)
    assert "other_address" in seen, f"the demo ended before the other user's login: {seen}"
    flood = seen["flood"]
    assert isinstance(flood, list) and flood[:3] == [401, 401, 401] and 429 in flood
    assert seen["other_address"] == 200  # the flooded user name stays throttled: tests/hmi/test_login_guard.py
