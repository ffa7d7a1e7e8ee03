"""Password hashing for HMI and OPC UA users: ``hashlib.scrypt`` with a random salt.

Stored format (one string in the config, never the password): ``scrypt$N$r$p$salt$hash``
with salt and hash in URL-safe base64 without padding. scrypt is memory-hard, so a leaked
config file does not give the passwords away cheaply; verification is constant-time.

Make a hash for the config: ``python -m line.passwords`` (asks twice) or
``python -m line.passwords PASSWORD``.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import sys

DEFAULT_N = 2**14  # 16 MiB of memory per check with r=8: slow for an attacker, ~50 ms for us
DEFAULT_R = 8
DEFAULT_P = 1
_DKLEN = 32
_MAX_N = 2**20  # refuse absurd parameters from a config (memory exhaustion)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Accepts URL-safe or standard base64, padded or not (older hashes used the latter)."""
    text = text.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=_maxmem(n, r, p))
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _maxmem(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2) + (1 << 20)


def parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """Split a stored hash; ValueError names what is wrong (config validation uses it)."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("password hash must look like scrypt$N$r$p$salt$hash")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"password hash is malformed: {exc}") from None
    if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or not salt or not digest:
        raise ValueError("password hash parameters out of range (N a power of two up to 2^20, r 1..64, p 1..16)")
    return n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches; a malformed hash never matches."""
    try:
        n, r, p, salt, digest = parse_hash(encoded)
    except ValueError:
        return False
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=_maxmem(n, r, p))
    return hmac.compare_digest(candidate, digest)


def dummy_hash(like: list[str]) -> str:
    """A hash no password matches, with the scrypt parameters most of ``like`` use.

    Checked when a user name is unknown, so that a wrong name costs as long as a wrong password
    (a fixed dummy with other parameters let timing tell known names from unknown ones)."""
    params: dict[tuple[int, int, int], int] = {}
    for encoded in like:
        try:
            n, r, p, _, _ = parse_hash(encoded)
        except ValueError:
            continue
        params[(n, r, p)] = params.get((n, r, p), 0) + 1
    n, r, p = max(params, key=lambda k: params[k]) if params else (DEFAULT_N, DEFAULT_R, DEFAULT_P)
    return f"scrypt${n}${r}${p}${_b64(os.urandom(16))}${_b64(os.urandom(_DKLEN))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m line.passwords",
        description="Print a password hash (scrypt) for the users: sections of a station config "
                    "(hmi.users.NAME.password_hash, opcua_server.users.NAME.password_hash).",
        epilog="Without PASSWORD it asks twice, so the password stays out of the shell history. "
               "A password that starts with '-' goes after '--'.",
    )  # fmt: skip
    parser.add_argument("password", nargs="?", metavar="PASSWORD", help="the password to hash (default: ask for it)")
    password = parser.parse_args(sys.argv[1:] if argv is None else argv).password
    if password is None:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
