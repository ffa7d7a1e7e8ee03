"""The MQTT link's states follow the link table (``plc.link_state``) against a real mosquitto:
killed and restarted, and a refused login."""

from __future__ import annotations

from pathlib import Path

import pytest

from line.uplink.config import UplinkConfig
from line.uplink.link import Link, MqttLink
from plc.link_state import LINK_TRANSITIONS
from tests.reliability.faults import wait_for
from tests.transition_log import TransitionLog, refusals
from tests.uplink.broker import Mosquitto
from tests.uplink.helpers import uplink_section

pytestmark = pytest.mark.timeout(180)


def _link(broker: Mosquitto, folder: Path, **section: object) -> tuple[MqttLink, TransitionLog]:
    config = UplinkConfig.model_validate(uplink_section(broker, folder, **section))
    link = MqttLink(config, "linecheck-states", lambda: ("acme/states/will", b"offline", True),
                    lambda mid, refusal: None)
    walked = TransitionLog()
    link.lifecycle.add_listener(walked)
    return link, walked


def test_a_broker_restart_walks_the_link_table(tmp_path: Path, broker: Mosquitto,
                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    link, walked = _link(broker, tmp_path)
    link.start()
    try:
        wait_for(lambda: link.state is Link.CONNECTED, 30, "the link to connect")
        broker.kill()
        wait_for(lambda: link.state is Link.DISCONNECTED, 60, "the link to notice")
        broker.start()
        wait_for(lambda: link.state is Link.CONNECTED, 60, "the reconnect")
    finally:
        link.close()
    assert walked.path() == ["connecting", "connected", "reconnecting", "connected", "closed"]
    assert link.generation == 2 and link.state is Link.CLOSED
    assert walked.outside(LINK_TRANSITIONS) == [] and refusals(caplog) == []


def test_a_refused_login_fails_and_closes(tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    link, walked = _link(broker, tmp_path, password="wrong", refused_retry_s=60)
    link.start()
    try:
        wait_for(lambda: link.state is Link.REFUSED, 30, "the refusal")
    finally:
        link.close()
    assert walked.path() == ["connecting", "failed", "closed"]
    assert walked.outside(LINK_TRANSITIONS) == [] and refusals(caplog) == []
