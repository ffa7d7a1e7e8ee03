"""The plant MQTT uplink (docs/mqtt-uplink.md): per-part verdicts, station state, alarms and
counters to the plant broker's Unified Namespace, store-and-forward through a disk outbox, and
optional recipe commands.

Modules, one job each: ``config`` (the ``uplink:`` section), ``payload`` (topics, JSON payloads,
schemas), ``outbox`` (SQLite store-and-forward), ``link`` (the paho client), ``publisher``
(queue -> outbox -> broker), ``commands`` (the recipe command topic), ``sink`` (the station's
face of it), ``attach`` (wiring into a station) and ``sparkplug`` (the optional Sparkplug B
edge-node mode: Eclipse Tahu's payload definition and the session rules).
"""
