"""Security pieces of the MES server: the server certificate created on first start, the trust
list for client certificates, the users (scrypt hashes from the config) behind the login guard,
and the role check.

Why a context variable for the caller: asyncua does not pass the session's user to a method
callback. It does call the permission ruleset's ``check_validity(user, ...)`` in the same task,
immediately before it dispatches the request, so the ruleset records the caller there and the
method handlers read it (``current_user()``). A request that reaches a handler without having
passed the ruleset sees no user and is refused (default deny).

Why sessions of our own (``PeerAddressServer``): asyncua does not pass the client's address to
the user manager either, and the login guard throttles per address. The session knows its peer
(asyncua names a session after it) and ``activate_session`` calls the user manager
synchronously, so the session sets the address in a context variable around that call.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen, uacrypto
from asyncua.crypto.permission_rules import ADMIN_TYPES, USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from line.login_guard import LoginGuard, LoginRefused, LoginThrottle, PasswordGate
from line.mes.config import OpcUaServerConfig, SecurityPolicyName, verify_password
from line.passwords import dummy_hash

_log = logging.getLogger(__name__)

POLICY_TYPES: dict[SecurityPolicyName, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128Sha256RsaOaep_SignAndEncrypt": ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    "Aes256Sha256RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    name: str  # user name, or "anonymous"
    role: str  # reader | operator


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "linecheck_opcua_caller", default=None
)


def current_user() -> Caller | None:
    return _current.get()


_peer: contextvars.ContextVar[str] = contextvars.ContextVar("linecheck_opcua_peer", default="?")


def _host(peer: object) -> str:
    """The address part of asyncua's peer name (``(host, port)`` or ``(host, port, flow, scope)``)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class PeerAddressSession(InternalSession):
    """Tells the user manager the client address while a session is being activated."""

    def activate_session(self, params: ua.ActivateSessionParameters, peer_certificate: bytes | None) -> ua.ActivateSessionResult:
        token = _peer.set(_host(self.name))
        try:
            return super().activate_session(params, peer_certificate)
        finally:
            _peer.reset(token)


class PeerAddressServer(InternalServer):
    """asyncua's internal server, with sessions that tell the user manager the client address."""

    def create_session(self, name: str, user: User = User(role=UserRole.Anonymous), external: bool = False) -> InternalSession:  # noqa: B008 - asyncua's signature
        return PeerAddressSession(self, self.aspace, self.subscription_service, name, user=user, external=external)


def _san_names(config: OpcUaServerConfig) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(config.application_uri)]
    hosts = {socket.gethostname(), "localhost"}
    if config.host not in ("0.0.0.0", "::"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(config.host)))
        except ValueError:
            hosts.add(config.host)
    names.extend(x509.DNSName(h) for h in sorted(hosts))
    return names


def _usable(cert: x509.Certificate, config: OpcUaServerConfig) -> bool:
    """Still valid for 30 days and naming our application URI and endpoint host."""
    now = datetime.now(timezone.utc)
    if not (cert.not_valid_before_utc <= now and cert.not_valid_after_utc > now + timedelta(days=30)):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(_san_names(config)) <= set(san)


async def ensure_server_certificate(config: OpcUaServerConfig) -> tuple[Path, Path]:
    """Create (first start) or reuse the self-signed server certificate + key in state_dir.

    The key is kept across restarts; the certificate is re-issued for that key only when it
    expires within 30 days or no longer names the application URI / endpoint host (SAN: URI,
    host name, localhost, the endpoint's IP). The key file is owner-readable only."""
    pki = config.state_dir / "pki" / "own"
    pki.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = pki / "server_key.pem", pki / "server_cert.der"
    if key_file.is_file():
        key = await uacrypto.load_private_key(key_file)
    else:
        key = cert_gen.generate_private_key()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(cert_gen.dump_private_key_as_pem(key))
    cert = await uacrypto.load_certificate(cert_file) if cert_file.is_file() and key_file.is_file() else None
    if cert is None or not _usable(cert, config) or cert.public_key() != key.public_key():
        cert = cert_gen.generate_self_signed_app_certificate(
            key,  # type: ignore[arg-type]
            f"linecheck {config.station_id}",
            {"organizationName": "linecheck"},
            _san_names(config),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            days=config.certificate_days,
        )
        cert_file.write_bytes(cert.public_bytes(Encoding.DER))
    os.chmod(key_file, 0o600)
    config.trusted_dir.mkdir(parents=True, exist_ok=True)
    config.rejected_dir.mkdir(parents=True, exist_ok=True)
    return cert_file, key_file


class TrustListValidator:
    """Client certificate check at CreateSession: in the validity period, and either itself in
    the trust directory (self-signed MES clients) or issued by a CA certificate placed there.

    The directory is re-read when its mtime changes, so an admin (or a test) can add a client
    certificate without a restart. A refused certificate is copied to ``rejected_dir`` for an
    admin to approve (move it to the trust directory); that folder is capped in count and bytes,
    oldest out, because anyone who can reach the port can send certificates. An empty trust
    directory (the first deployment) refuses every client with BadCertificateUntrusted and
    keeps their certificates the same way."""

    def __init__(self, trusted_dir: Path, rejected_dir: Path, max_rejected: int = 64,
                 max_rejected_bytes: int = 512 * 1024) -> None:  # fmt: skip
        self._trusted_dir = trusted_dir
        self._rejected_dir = rejected_dir
        self._max_rejected = max_rejected
        self._max_rejected_bytes = max_rejected_bytes
        self._mtime_ns = -1
        self._fingerprints: set[bytes] = set()
        self._store = TrustStore([trusted_dir], [])
        self._store_ready = False  # asyncua's store cannot be built from an empty folder
        self._lock = asyncio.Lock()

    async def _reload(self) -> None:
        async with self._lock:  # concurrent CreateSessions must not see a half-loaded list
            mtime = self._trusted_dir.stat().st_mtime_ns if self._trusted_dir.exists() else 0
            if mtime == self._mtime_ns:
                return
            fingerprints: set[bytes] = set()
            paths = sorted(self._trusted_dir.glob("*")) if self._trusted_dir.exists() else []
            for path in paths:
                if path.suffix.lower() not in (".der", ".pem", ".crt"):
                    continue
                try:
                    cert = await uacrypto.load_certificate(path)
                except Exception:  # a stray file must not take the validator down
                    _log.warning("trust list: cannot read %s", path)
                    continue
                fingerprints.add(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest())
            try:
                await self._store.load()
                self._store_ready = True
            except ValueError:  # no certificate to build a store from: nothing is trusted
                self._store_ready = False
            self._fingerprints = fingerprints
            self._mtime_ns = mtime

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        await self._reload()
        der = cert.public_bytes(Encoding.DER)
        name = cert.subject.rfc4514_string()
        now = datetime.now(timezone.utc)
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            _log.warning("client certificate out of its validity period: %s", name)
            raise ServiceError(ua.StatusCodes.BadCertificateTimeInvalid)
        if hashlib.sha256(der).digest() in self._fingerprints or (self._store_ready and self._store.is_trusted(cert)):
            return
        _log.warning("untrusted client certificate refused: %s (%s)", name, app_description.ApplicationUri)
        self._keep_rejected(der)
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    def _keep_rejected(self, der: bytes) -> None:
        """Store for approval, then drop the oldest beyond the count and byte caps."""
        try:
            self._rejected_dir.mkdir(parents=True, exist_ok=True)
            if len(der) > self._max_rejected_bytes:
                return
            path = self._rejected_dir / f"{hashlib.sha1(der).hexdigest()}.der"  # noqa: S324
            if path.exists():
                path.touch()  # seen again: now the newest
            else:
                path.write_bytes(der)
            kept = sorted(((p.stat().st_mtime_ns, p) for p in self._rejected_dir.glob("*.der")), reverse=True)
            total = 0
            for index, (_, old) in enumerate(kept):
                total += old.stat().st_size
                if index >= self._max_rejected or total > self._max_rejected_bytes:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # a full or read-only disk must not turn a refusal into an error
            _log.warning("cannot keep the rejected certificate: %s", exc)


class ConfigUserManager:
    """Users from the config. Reader and operator both map to asyncua's ``UserRole.User`` (they
    may read, browse, subscribe, read history and call methods); the finer role lives in
    ``User.name`` -> config and is checked by the method handlers.

    Every user-name login passes the login guard (``line.login_guard``, the HMI's policy):
    throttled per client address and user name, locked out after ``login_throttle.lockout_after``
    failures, one password check at a time, every failure audited. A
    throttled or locked-out login gets BadUserAccessDenied without a password check. An admin
    lifts lockouts by writing ``clear_lockouts_file`` (see ``OpcUaServerConfig``)."""

    def __init__(self, config: OpcUaServerConfig) -> None:
        self._config = config
        # an unknown name is checked against this, so it costs as long as a wrong password
        # (without it, timing told known user names from unknown ones: 91 ms against 4 ms)
        self.dummy_hash = dummy_hash([u.password_hash for u in config.users.values()])
        policy = config.login_throttle
        # activate_session is synchronous on the server's event loop: one check at a time
        # already, so no caller ever waits at the gate. The check keeps the process's priority
        # (already below the station's, opcua_server.nice): niced further, one check held the
        # event loop, and with it every MES client, for seconds on a busy machine
        gate = PasswordGate(max_waiting=0, wait_s=0.0, thread_name="opcua-password", lower_priority=False)
        self.guard: LoginGuard[User] = LoginGuard(self._check_password, LoginThrottle(policy), gate, _audit)

    def _check_password(self, username: str, password: str) -> User | None:
        """One scrypt, known user or not."""
        entry = self._config.users.get(username)
        matches = verify_password(password, entry.password_hash if entry is not None else self.dummy_hash)
        return User(role=UserRole.User, name=username) if entry is not None and matches else None

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            if self._config.allow_anonymous:
                return User(role=UserRole.User, name=None)
            return None
        self._apply_clear_request()
        address = _peer.get()
        try:
            return self.guard.authenticate(username, password or "", address)
        except LoginRefused as exc:
            # info, not warning: a flood would fill the log; the lockout itself is audited
            _log.info("OPC UA login refused before the password check: user %r from %s (%s; %.0f s)",
                      username, address, exc, exc.retry_after_s)  # fmt: skip
            return None

    def address_blocked_for(self, address: str) -> float:
        """Seconds the address may not try a login (0: go ahead), for the listener's tarpit
        (``line.mes.address_tarpit``); an admin's clear request is applied first."""
        self._apply_clear_request()
        return self.guard.throttle.wait_s([f"addr:{address}"])

    def _apply_clear_request(self) -> None:
        """An admin's request to lift lockouts: the file's keys (none: all), then the file goes."""
        request = self._config.clear_lockouts_file
        try:
            keys = [k.strip() for k in request.read_text(encoding="utf-8", errors="replace").splitlines() if k.strip()]
            request.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            _log.warning("cannot read %s: %s", request, exc)
            return
        cleared = [c for key in keys for c in self.guard.throttle.clear(key)] if keys else self.guard.throttle.clear()
        _audit("login_lockout_cleared", {"by": str(request), "keys": cleared, "time": time.time()})

    def close(self) -> None:
        self.guard.close()

    def role_of(self, user: User | None) -> str | None:
        if user is None or user.role != UserRole.User:
            return None
        if user.name is None:
            return "reader" if self._config.allow_anonymous else None
        entry = self._config.users.get(user.name)
        return entry.role if entry is not None else None


def _audit(kind: str, data: dict[str, object]) -> None:
    """A security event in the server process's log: who, from where, when; never a password."""
    when = datetime.fromtimestamp(float(data.pop("time", time.time())), timezone.utc).isoformat(timespec="seconds")  # type: ignore[arg-type]
    _log.warning("OPC UA %s at %s: %s", kind, when, " ".join(f"{k}={v!r}" for k, v in data.items()))


class RoleRuleset(PermissionRuleset):
    """Authenticated users may use the read-side services and Call; nobody may change the
    address space or write attributes over the network (all values are owned by the station).
    Records the caller for the method handlers (see module docstring)."""

    _WRITE = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)  # type: ignore[arg-type]

    def __init__(self, users: ConfigUserManager) -> None:
        self._users = users
        self._allowed = {ua.NodeId(t) for t in USER_TYPES} - {self._WRITE}  # type: ignore[arg-type]
        self._admin = {ua.NodeId(t) for t in ADMIN_TYPES}  # type: ignore[arg-type]

    def check_validity(self, user: User | None, action_type_id: ua.NodeId, body: Any) -> bool:
        role = self._users.role_of(user)
        if role is None or user is None:
            _current.set(None)
            return False
        _current.set(Caller(name=user.name or ANONYMOUS, role=role))
        return action_type_id in self._allowed and action_type_id not in self._admin
