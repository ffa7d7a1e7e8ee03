"""A link's states move only along one table (issue 23), for every link the station owns: the
Modbus and OPC UA clients here, and in ``line`` the MQTT uplink. So a reconnect loop reads the
same everywhere (connected -> reconnecting -> connected ...), and nothing reopens a closed link:
a supervisor or a network callback still running after ``close`` is refused instead of showing
a closed sink as connected again.

The table lives in ``plc`` (not next to ``LinkState`` in the vocabulary) with its holder
because ``line`` may use ``plc`` and never the reverse; the vocabulary stays plain words.
"""

from __future__ import annotations

from plc.guarded_state import GuardedState
from plc.vocabulary import LinkState

LINK_TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    LinkState.DISCONNECTED: frozenset({LinkState.CONNECTING, LinkState.CLOSED}),  # built, not started
    # a first attempt that failed: retried as CONNECTING by a PLC client, as RECONNECTING by the
    # MQTT uplink (paho's own reconnect); FAILED: the peer refused the login
    LinkState.CONNECTING: frozenset({LinkState.CONNECTED, LinkState.RECONNECTING, LinkState.FAILED, LinkState.CLOSED}),
    LinkState.CONNECTED: frozenset({LinkState.RECONNECTING, LinkState.CLOSED}),
    LinkState.RECONNECTING: frozenset({LinkState.CONNECTED, LinkState.FAILED, LinkState.CLOSED}),
    # a refused login is retried (slowly): the peer may accept it again, or the next try fails
    # for another reason (unreachable)
    LinkState.FAILED: frozenset({LinkState.CONNECTED, LinkState.RECONNECTING, LinkState.CLOSED}),
    LinkState.CLOSED: frozenset(),  # final: a closed link is not reopened (build a new one)
}


class LinkStateHolder(GuardedState[LinkState]):
    """One link's state, changed only along :data:`LINK_TRANSITIONS`; thread-safe (the HMI and
    the station read it while the link's own thread changes it)."""

    def __init__(self, name: str, initial: LinkState = LinkState.DISCONNECTED) -> None:
        super().__init__(name, initial, LINK_TRANSITIONS)

    def attempt(self) -> bool:
        """A connection attempt starts: CONNECTING until the link has been up once,
        RECONNECTING after (the table never lets a link that was up go back to CONNECTING)."""
        state = self.state
        first = state is LinkState.CONNECTING or LinkState.CONNECTING in LINK_TRANSITIONS[state]
        return self.advance(LinkState.CONNECTING if first else LinkState.RECONNECTING)
