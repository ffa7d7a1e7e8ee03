"""A real Debian mosquitto for the uplink tests: TLS with a CA made here (``cryptography``),
username/password logins and an ACL, on a free port; it can be SIGKILLed and restarted on the
same port with its persistent sessions (autosaved every second)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

ROOT = "acme/plant1/packing/line4"
PASSWORDS = {"test-1": "station-secret", "plant": "plant-secret", "mes": "mes-secret"}
# each station writes only under its own station level (%u: its user name) and reads its
# command topic; the plant reads everything; MES may write the command topics
ACL = f"""
pattern write {ROOT}/%u/linecheck/part
pattern write {ROOT}/%u/linecheck/state
pattern write {ROOT}/%u/linecheck/alarm
pattern write {ROOT}/%u/linecheck/counters
pattern write {ROOT}/%u/linecheck/cmd/recipe/result
pattern read {ROOT}/%u/linecheck/cmd/recipe
# Sparkplug B: each station is the edge node named as its user; it reads its NCMD and the STATE
# of primary hosts, which only the plant (the primary host) writes
pattern write spBv1.0/+/+/%u
pattern write spBv1.0/+/+/%u/+
pattern read spBv1.0/+/NCMD/%u
pattern read spBv1.0/STATE/+

user plant
topic read acme/#
topic read spBv1.0/#
topic write spBv1.0/STATE/+
topic write spBv1.0/+/NCMD/+

user mes
topic write acme/+/+/+/+/linecheck/cmd/recipe
topic read acme/+/+/+/+/linecheck/cmd/recipe/result
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def make_ca(folder: Path, hosts: Iterable[str]) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for ``hosts`` (names or IP addresses)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "linecheck test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return ca_file, cert_file, key_file


class Mosquitto:
    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int | None = None,
                 hosts: Iterable[str] = ("127.0.0.1", "localhost"), netns: str | None = None,
                 also_listen: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.host, self.port, self.netns = host, port or free_port(), netns
        self.ca_file, cert, key = make_ca(folder, {*hosts, host, *also_listen})
        passwd = folder / "passwd"
        passwd.write_text("")
        for user, password in PASSWORDS.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True, capture_output=True)
        (folder / "acl").write_text(ACL)
        (folder / "data").mkdir(exist_ok=True)
        self.log = folder / "mosquitto.log"
        self.conf = folder / "mosquitto.conf"
        # started as root, mosquitto would drop to its own user, which cannot enter pytest's 0700 folders
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"""{run_as}
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {folder / "acl"}
persistence true
persistence_location {folder / "data"}/
autosave_interval 1
log_dest file {self.log}
log_type all
""" + "".join(f"""
listener {self.port} {address}
cafile {self.ca_file}
certfile {cert}
keyfile {key}
""" for address in (host, *also_listen)))  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_mark = 0

    def start(self) -> Mosquitto:
        self._log_mark = len(self.log_text())  # a restart must wait for its own "running"
        cmd = ["mosquitto", "-c", str(self.conf)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start listening within 30 s")
            time.sleep(0.05)
        return self

    def _listening(self) -> bool:
        text = self.log_text()[self._log_mark:]
        return f"Opening ipv4 listen socket on port {self.port}" in text and " running" in text

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, no final save."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None


@dataclass
class Collector:
    """The plant side: a persistent-session subscriber that keeps every message it gets."""

    broker: Mosquitto
    topic: str = "acme/#"
    user: str = "plant"
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collector-{self.user}-{id(self)}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.username_pw_set(self.user, PASSWORDS.get(self.user, ""))
        self.client.tls_set(ca_certs=str(self.broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> Collector:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # queued for us while we or the broker are away
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(30):
            raise RuntimeError("collector did not connect")
        return self

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:  # type: ignore[no-untyped-def]
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reasons, properties) -> None:  # type: ignore[no-untyped-def]
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def on(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SubCollector:
    """The plant side as Debian ``mosquitto_sub`` (optionally inside the broker's network
    namespace, so cutting the station's link does not cut the plant's): a persistent session,
    QoS 1, one ``topic payload`` line per message in a file."""

    def __init__(self, broker: Mosquitto, host: str, out: Path, topic: str = "acme/#") -> None:
        self.out = out
        cmd = ["mosquitto_sub", "-h", host, "-p", str(broker.port), "--cafile", str(broker.ca_file),
               "-u", "plant", "-P", PASSWORDS["plant"], "-t", topic, "-q", "1", "-c", "-i", f"plant-sub-{out.stem}",
               "-V", "mqttv5", "-x", "3600", "-v", "-k", "5"]  # fmt: skip
        if broker.netns:
            cmd = ["ip", "netns", "exec", broker.netns, *cmd]
        self._file = out.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._file, stderr=subprocess.PIPE)

    def messages(self) -> list[tuple[str, bytes]]:
        lines = self.out.read_bytes().splitlines()
        return [(t.decode(), p) for t, _, p in (line.partition(b" ") for line in lines if line)]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._file.close()
