"""Failed logins: throttled per address and user name (injected clock), work bounded before any
hashing, audited without the password, lockouts cleared by an admin; Host allow-list and long
image names over real HTTP."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import httpx

from line.hmi.auth import User, UserStore
from line.login_guard import LoginGuard, LoginRefused, LoginThrottle, PasswordGate, ThrottlePolicy
from line.passwords import hash_password
from tests.hmi.helpers import PASSWORDS, running_rig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delays_grow_then_lock_out_and_expire() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(free_failures=2, base_delay_s=1, max_delay_s=8, lockout_after=6, lockout_s=100), clock)
    keys = ["addr:10.0.0.9"]
    delays = [throttle.failed(keys) for _ in range(6)]
    assert delays == [0, 0, 1, 2, 4, 100]
    assert throttle.wait_s(keys) == 100
    assert throttle.blocked()[0]["locked_out"] is True
    clock.now += 100.5
    assert throttle.wait_s(keys) == 0
    assert throttle.wait_s(["addr:10.0.0.10"]) == 0  # another address never was affected


def test_success_clears_and_admin_clear() -> None:
    throttle = LoginThrottle(ThrottlePolicy(free_failures=0), FakeClock())
    throttle.failed(["user:a", "addr:x"])
    assert throttle.wait_s(["user:a"]) > 0
    assert throttle.clear("user:a") == ["user:a"]
    assert throttle.wait_s(["user:a"]) == 0 and throttle.wait_s(["addr:x"]) > 0
    throttle.succeeded(["addr:x"])
    assert throttle.blocked() == []


def test_tracked_keys_are_bounded() -> None:
    throttle = LoginThrottle(ThrottlePolicy(max_tracked=10), FakeClock())
    for i in range(100):
        throttle.failed([f"user:guess{i}"])
    assert len(throttle.clear()) == 10


def _store() -> UserStore:
    return UserStore({"op": {"role": "operator", "password_hash": hash_password("right", n=1024)}})


def test_guard_refuses_throttled_attempts_without_hashing() -> None:
    checks: list[str] = []
    store = _store()
    real = store.authenticate

    def counting(name: str, password: str) -> User | None:
        checks.append(name)
        return real(name, password)

    store.authenticate = counting  # type: ignore[method-assign]
    audit: list[tuple[str, dict[str, object]]] = []
    gate = PasswordGate()
    guard = LoginGuard(store.authenticate, LoginThrottle(ThrottlePolicy(free_failures=1), FakeClock()), gate, lambda k, d: audit.append((k, d)))
    try:
        assert guard.authenticate("op", "wrong", "10.1.1.1") is None
        assert guard.authenticate("op", "wrong", "10.1.1.1") is None  # second failure: now delayed
        refused = 0
        for _ in range(50):
            try:
                guard.authenticate("op", "guess", "10.1.1.1")
            except LoginRefused as exc:
                assert exc.status == 429 and exc.retry_after_s > 0
                refused += 1
        assert refused == 50 and len(checks) == 2  # no hashing for throttled attempts
        assert [k for k, _ in audit] == ["login_failed", "login_failed"]
        assert audit[0][1]["user"] == "op" and audit[0][1]["address"] == "10.1.1.1"
        assert all("wrong" not in repr(d) and "guess" not in repr(d) for _, d in audit)  # never the password
    finally:
        guard.close()


def test_gate_refuses_beyond_its_room_without_running_the_check() -> None:
    gate = PasswordGate(max_waiting=0, wait_s=0.01)
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def slow() -> None:
        started.set()
        release.wait()
        ran.append("slow")

    holder = threading.Thread(target=gate.run, args=(slow,))
    holder.start()
    started.wait()
    try:
        assert gate.run(lambda: ran.append("extra")) == (False, None)
    finally:
        release.set()
        holder.join()
    assert gate.run(lambda: ran.append("after")) == (True, None)
    gate.close()
    assert ran == ["slow", "after"]


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_flood_over_http_is_throttled_audited_and_cleared_by_an_admin(tmp_path: Path) -> None:
    policy = ThrottlePolicy(free_failures=3, lockout_after=4, lockout_s=3600, hold_s=0.05)  # locked at the 4th
    with running_rig(tmp_path, login_policy=policy) as rig, httpx.Client(base_url=rig.url, timeout=30) as http:
        codes = [http.post("/api/login", json={"username": "operator", "password": f"guess{i}"}).status_code for i in range(12)]
        assert codes == [401] * 4 + [429] * 8
        refused = http.post("/api/login", json={"username": "operator", "password": PASSWORDS["operator"]})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1  # even the right password waits
        assert http.get("/api/me", headers=_basic("operator", PASSWORDS["operator"])).status_code == 429
        assert rig.client("viewer").get("/api/me").status_code == 429  # same address, as designed
        admin = rig.client("admin")
        assert admin.get("/api/me").status_code == 429
        rig.hmi.ctx.guard.throttle.clear("addr:127.0.0.1")  # the address only; the user stays blocked
        blocked = admin.get("/api/admin/logins").json()
        assert [b["key"] for b in blocked] == ["user:operator"]
        assert rig.client("viewer").post("/api/admin/logins/clear", json={"key": "user:operator"}).status_code == 403
        assert admin.post("/api/admin/logins/clear", json={"key": "user:operator"}).json() == {"cleared": ["user:operator"]}
        assert rig.login("operator").get("/api/me").json()["user"] == "operator"
        rig.wait(lambda: len(rig.events("login_failed")) >= 3 and len(rig.events("login_lockout_cleared")) == 1)
        failed = rig.events("login_failed")
        assert all("guess" not in row[4] and "127.0.0.1" in row[4] for row in failed)


def test_foreign_host_refused_and_long_image_name_is_400(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig:
        viewer = rig.client("viewer")
        foreign = viewer.get("/api/me", headers={"Host": "evil.example", "Origin": "http://evil.example"})
        assert foreign.status_code == 400
        assert viewer.get("/api/me").status_code == 200
        assert viewer.get("/api/images/" + "a" * 300).status_code == 400
        assert viewer.get("/api/images/" + "a" * 255).status_code in (400, 404)


def test_configured_hosts_replace_the_loopback_default(tmp_path: Path) -> None:
    with running_rig(tmp_path, hmi={"allowed_hosts": ("hmi.plant.example",)}) as rig:
        viewer = rig.client("viewer")
        assert viewer.get("/api/me").status_code == 400  # 127.0.0.1 is no longer listed
        assert viewer.get("/api/me", headers={"Host": "hmi.plant.example"}).status_code == 200
