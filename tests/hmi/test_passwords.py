"""scrypt password hashes: format, round trip, refusal of wrong and malformed input."""

from __future__ import annotations

import pytest

from line.errors import ConfigError
from line.hmi.auth import Sessions, User, UserStore
from line.passwords import hash_password, main, parse_hash, verify_password


def test_round_trip_and_format() -> None:
    encoded = hash_password("s3cret", n=1024)
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "1024", "8", "1") and salt and digest
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)
    assert hash_password("s3cret", n=1024) != encoded  # salted


@pytest.mark.parametrize("bad", ["", "plain", "scrypt$1024$8$1$c2FsdA", "bcrypt$1024$8$1$c2FsdA$aGFzaA",
                                 "scrypt$1000$8$1$c2FsdA$aGFzaA", "scrypt$2097152$8$1$c2FsdA$aGFzaA", "scrypt$x$8$1$c2FsdA$aGFzaA"])  # fmt: skip
def test_malformed_hashes_never_match_and_are_named(bad: str) -> None:
    assert not verify_password("anything", bad)
    with pytest.raises(ValueError):
        parse_hash(bad)


def test_demo_config_hashes_match_the_documented_passwords() -> None:
    from pathlib import Path

    from line.app.assembly import load_station_config

    config = load_station_config(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")
    store = UserStore(config.hmi.users)
    for name in ("viewer", "operator", "admin"):
        assert store.authenticate(name, f"{name}-demo") == User(name, name)
        assert store.authenticate(name, "wrong") is None


def test_user_store_validation() -> None:
    with pytest.raises(ConfigError) as err:
        UserStore({"bob": {"role": "boss", "password_hash": "x"}})
    fields = {p.path for p in err.value.problems}
    assert fields == {"bob.role", "bob.password_hash"}


def test_sessions_expire_and_drop() -> None:
    sessions = Sessions(ttl_s=0.05, max_per_user=2)
    a = sessions.create(User("a", "viewer"))
    assert sessions.get(a) == User("a", "viewer")
    sessions.create(User("a", "viewer"))
    sessions.create(User("a", "viewer"))
    assert sessions.get(a) is None  # bounded: the oldest went
    import time

    time.sleep(0.06)
    assert sessions.get(None) is None


def test_one_user_logging_in_often_keeps_other_users_sessions() -> None:
    sessions = Sessions(ttl_s=3600, max_per_user=4)
    other = sessions.create(User("operator", "operator"))
    mine = [sessions.create(User("viewer", "viewer")) for _ in range(1000)]
    assert sessions.get(other) == User("operator", "operator")
    assert sum(sessions.get(t) is not None for t in mine) == 4  # the newest four of the busy user
    assert sessions.get(mine[-1]) is not None and sessions.get(mine[0]) is None


def test_unknown_user_costs_a_check_with_the_configured_parameters() -> None:
    """The dummy a wrong name is checked against uses the users' own scrypt parameters, so a
    wrong name costs as much as a wrong password (no user enumeration by timing)."""
    from line.passwords import parse_hash

    store = UserStore({"a": {"role": "viewer", "password_hash": hash_password("pw", n=1024)}})
    assert parse_hash(store.dummy_hash)[:3] == (1024, 8, 1)
    assert store.authenticate("nobody", "pw") is None


def test_cli_prints_a_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pw"]) == 0
    assert verify_password("pw", capsys.readouterr().out.strip())
