"""The transition tables of cameras and links: every transition they do not list is refused
(the state stays, the refusal is logged), every one they list is taken, and the two copies of
the guard stay the same code."""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

import pytest

import camera.guarded_state
from camera.states import CAMERA_TRANSITIONS, CameraState
from plc.link_state import LINK_TRANSITIONS, LinkStateHolder
from plc.vocabulary import LinkState
from tests.architecture.test_shared_copies import _code
from tests.transition_log import REFUSED, TransitionLog

REPO = Path(__file__).resolve().parents[2]


def test_the_guard_copies_are_the_same_code() -> None:
    assert _code(REPO / "camera/guarded_state.py") == _code(REPO / "plc/guarded_state.py")


def _pairs(states: type[Enum], table: dict, allowed: bool) -> list[tuple[Enum, Enum]]:  # type: ignore[type-arg]
    return [(a, b) for a in states for b in states if a is not b and (b in table[a]) is allowed]


@pytest.mark.parametrize(("before", "after"), _pairs(CameraState, CAMERA_TRANSITIONS, allowed=False))
def test_a_camera_refuses_what_its_table_does_not_list(before: CameraState, after: CameraState,
                                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    state = camera.guarded_state.GuardedState("camera cam0", before, CAMERA_TRANSITIONS)
    heard = TransitionLog()
    state.add_listener(heard)
    with caplog.at_level(logging.ERROR, logger="camera.guarded_state"):
        assert state.advance(after) is False
    assert state.state is before and heard.steps == []
    assert [r.levelno for r in caplog.records if REFUSED in r.getMessage()] == [logging.ERROR]
    assert f"camera cam0: {before.value} -> {after.value}" in caplog.text


@pytest.mark.parametrize(("before", "after"), _pairs(CameraState, CAMERA_TRANSITIONS, allowed=True))
def test_a_camera_takes_what_its_table_lists(before: CameraState, after: CameraState) -> None:
    state = camera.guarded_state.GuardedState("camera cam0", before, CAMERA_TRANSITIONS)
    heard = TransitionLog()
    state.add_listener(heard)
    assert state.advance(after) is True and state.state is after
    assert heard.steps == [(before, after)]
    assert state.advance(after) is True and heard.steps == [(before, after)]  # staying put: no change


@pytest.mark.parametrize(("before", "after"), _pairs(LinkState, LINK_TRANSITIONS, allowed=False))
def test_a_link_refuses_what_its_table_does_not_list(before: LinkState, after: LinkState,
                                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    link = LinkStateHolder("modbus_client", before)
    heard = TransitionLog()
    link.add_listener(heard)
    with caplog.at_level(logging.DEBUG, logger="plc.guarded_state"):
        assert link.advance(after) is False
    assert link.state is before and heard.steps == []
    # leaving CLOSED is expected of callbacks still in flight at close: refused quietly
    level = logging.DEBUG if before is LinkState.CLOSED else logging.ERROR
    assert [r.levelno for r in caplog.records if REFUSED in r.getMessage()] == [level]


@pytest.mark.parametrize(("before", "after"), _pairs(LinkState, LINK_TRANSITIONS, allowed=True))
def test_a_link_takes_what_its_table_lists(before: LinkState, after: LinkState) -> None:
    link = LinkStateHolder("modbus_client", before)
    assert link.advance(after) is True and link.state is after


def test_closed_is_the_only_final_link_state_and_every_state_can_close() -> None:
    assert [s for s in LinkState if not LINK_TRANSITIONS[s]] == [LinkState.CLOSED]
    assert all(LinkState.CLOSED in LINK_TRANSITIONS[s] for s in LinkState if s is not LinkState.CLOSED)
    assert all(CameraState.CLOSED in CAMERA_TRANSITIONS[s] for s in CameraState if s is not CameraState.CLOSED)


def test_a_connection_attempt_is_connecting_until_the_link_was_up_then_reconnecting() -> None:
    link = LinkStateHolder("opcua_client")
    heard = TransitionLog()
    link.add_listener(heard)
    link.attempt()
    link.attempt()  # a failed first attempt, retried
    link.advance(LinkState.CONNECTED)
    link.advance(LinkState.RECONNECTING)
    link.attempt()
    link.advance(LinkState.CONNECTED)
    link.advance(LinkState.CLOSED)
    assert link.attempt() is False and link.state is LinkState.CLOSED
    assert heard.path() == ["disconnected", "connecting", "connected", "reconnecting", "connected", "closed"]
