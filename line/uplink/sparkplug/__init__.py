"""Sparkplug B (spec 3.0) for the uplink's edge-node mode: the Eclipse Tahu payload definition
(``sparkplug_b.proto``, EPL-2.0, see ``LICENSE-sparkplug_b``), the module generated from it,
and ``node`` (topics, metrics with aliases, births, death, sequence numbers, primary host state).

Why the generated module and not a Sparkplug library: the maintained Python ones (pysparkplug,
mqtt-spb-wrapper) pin paho-mqtt 1.x, ``tahu`` on PyPI pins protobuf 3.19 and ``tahutils``
protobuf < 5; the proto plus the ``protobuf`` runtime is what they all wrap (docs/mqtt-uplink.md).
"""
