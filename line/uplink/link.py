"""The MQTT connection to the plant broker (paho-mqtt 2, MQTT 5): login, TLS, last will,
reconnection with back-off, and what the broker answered.

Why MQTT 5: a broker tells a v5 client *why* it refused a publish (PUBACK reason "not
authorized" for a topic outside the ACL); a v3.1.1 client is acknowledged and the message
silently dropped. Why paho's own network thread: it already reconnects with an exponential
back-off (``reconnect_delay_set``); a refused login is slowed further to ``refused_retry_s``
so a wrong password never turns into a tight retry loop against the plant's broker.

The state is held as the station's other links hold theirs (``plc.link_state``: one table,
CLOSED final, so a paho callback arriving after ``close`` cannot reopen the link); ``Link``
is only the uplink's own words for those states, as its snapshot and alarms show them.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from enum import Enum

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from line.uplink.config import UplinkConfig
from plc.link_state import LinkStateHolder
from plc.vocabulary import LinkState

log = logging.getLogger(__name__)

# CONNACK reasons that another try with the same credentials cannot fix
_REFUSALS = {"Bad user name or password", "Not authorized", "Bad authentication method", "Banned",
             "Client identifier not valid"}  # fmt: skip


class Link(str, Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # lost; paho reconnects with back-off
    REFUSED = "refused"  # the broker refused the login; retried every refused_retry_s
    CLOSED = "closed"


# the uplink's words for the link states it goes through (the link starts CONNECTING)
_WORDS = {LinkState.DISCONNECTED: Link.DISCONNECTED, LinkState.CONNECTING: Link.CONNECTING,
          LinkState.CONNECTED: Link.CONNECTED, LinkState.RECONNECTING: Link.DISCONNECTED,
          LinkState.FAILED: Link.REFUSED, LinkState.CLOSED: Link.CLOSED}  # fmt: skip


AckHandler = Callable[[int, str | None], None]  # mid, refusal reason (None: accepted)
MessageHandler = Callable[[str, bytes], None]
# (topic, payload, retain) of the last will, asked for before every connect: Sparkplug's NDEATH
# carries a new bdSeq per connection
WillSource = Callable[[], tuple[str, bytes, bool]]


class MqttLink:
    """One paho client. ``generation`` counts successful connections: the sender re-sends
    everything unacknowledged whenever it changes."""

    def __init__(self, config: UplinkConfig, client_id: str, will: WillSource, on_ack: AckHandler,
                 subscriptions: tuple[str, ...] = (), on_message: MessageHandler | None = None,
                 clean_start: bool = False) -> None:  # fmt: skip
        self.config = config
        self.lifecycle = LinkStateHolder("mqtt_uplink", LinkState.CONNECTING)
        self.last_error = ""
        self.generation = 0
        self.connect_attempts = 0
        self.refusals = 0
        self.changed = threading.Event()  # set on every connect / disconnect
        self._on_ack = on_ack
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._will = will
        self._clean_start = clean_start
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if config.username is not None:
            client.username_pw_set(config.username, config.read_password())
        if config.tls is not None:
            tls = config.tls
            client.tls_set(ca_certs=str(tls.ca_file), certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None, cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)  # fmt: skip
        client.max_inflight_messages_set(config.inflight)
        self._normal_delay = (max(1, round(config.reconnect_min_s)), max(1, round(config.reconnect_max_s)))
        client.reconnect_delay_set(*self._normal_delay)
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = self._message
        client.on_pre_connect = self._attempt
        self.client = client

    @property
    def state(self) -> Link:
        return _WORDS[self.lifecycle.state]

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s,
                                  clean_start=True if self._clean_start else mqtt.MQTT_CLEAN_START_FIRST_ONLY)  # fmt: skip
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        """The message id (QoS 1: an ack follows through ``on_ack``), None when not handed over."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return None
        return info.mid

    def close(self) -> None:
        self.lifecycle.advance(LinkState.CLOSED)
        self.client.disconnect()
        self.client.loop_stop()
        self.changed.set()

    # --- paho callbacks (its network thread) ---------------------------------------------
    def _set_will(self) -> None:
        topic, payload, retain = self._will()
        self.client.will_set(topic, payload, qos=1, retain=retain)

    def _attempt(self, client: mqtt.Client, userdata: object) -> None:
        """Before every (re)connect, paho's thread: counted, and the will asked for afresh."""
        self._set_will()
        self.connect_attempts += 1

    def _connected(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: ReasonCode,
                   properties: Properties | None) -> None:  # fmt: skip
        if reason.is_failure:
            self.refusals += 1
            self.last_error = f"broker refused the connection: {reason.getName()}"
            if reason.getName() in _REFUSALS:
                self.lifecycle.advance(LinkState.FAILED)
                wait = max(1, round(self.config.refused_retry_s))
                client.reconnect_delay_set(wait, wait)
            else:
                self.lifecycle.advance(LinkState.RECONNECTING)
            log.warning("MQTT %s:%d: %s", self.config.host, self.config.port, self.last_error)
            self.changed.set()
            return
        client.reconnect_delay_set(*self._normal_delay)
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self.last_error = ""
        self.generation += 1
        self.lifecycle.advance(LinkState.CONNECTED)
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)
        self.changed.set()

    def _connect_failed(self, client: mqtt.Client, userdata: object) -> None:
        if self.state is not Link.REFUSED:
            self.lifecycle.advance(LinkState.RECONNECTING)
            self.last_error = f"cannot reach {self.config.host}:{self.config.port}"
        self.changed.set()

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags, reason: ReasonCode,
                      properties: Properties | None) -> None:  # fmt: skip
        if self.state in (Link.CLOSED, Link.REFUSED):
            self.changed.set()
            return
        self.lifecycle.advance(LinkState.RECONNECTING)
        self.last_error = f"connection lost: {reason.getName()}"
        log.warning("MQTT %s:%d: %s", self.config.host, self.config.port, self.last_error)
        self.changed.set()

    def _published(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                   properties: Properties | None) -> None:  # fmt: skip
        self._on_ack(mid, reason.getName() if reason.is_failure else None)

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._on_message is not None:
            self._on_message(message.topic, bytes(message.payload))
