"""A camera's states and the transitions allowed between them (issue 23), so every source
(hardware, simulated, replayed, in memory) moves the same way and a stray change (a late
reconnect after ``stop``, a ``start`` on a failed device) shows up in the log instead of in
the HMI as a state the camera cannot be in.

``CLOSED`` is not final: a stopped hardware source connects again on ``start``.
"""

from __future__ import annotations

from enum import Enum


class CameraState(str, Enum):
    CLOSED = "closed"
    CONNECTED = "connected"  # the device is open (settings can be checked); not streaming
    ACQUIRING = "acquiring"
    RECONNECTING = "reconnecting"  # the device was lost while streaming; fetches fail fast
    FAILED = "failed"  # the device came back but refuses the recipe: only closing is left


CAMERA_TRANSITIONS: dict[CameraState, frozenset[CameraState]] = {
    CameraState.CLOSED: frozenset({CameraState.CONNECTED}),
    CameraState.CONNECTED: frozenset({CameraState.ACQUIRING, CameraState.CLOSED}),
    CameraState.ACQUIRING: frozenset({CameraState.CONNECTED, CameraState.RECONNECTING, CameraState.CLOSED}),
    # back to CONNECTED: a simulated camera stopped while its injected failure lasted
    CameraState.RECONNECTING: frozenset(
        {CameraState.ACQUIRING, CameraState.CONNECTED, CameraState.FAILED, CameraState.CLOSED}
    ),
    CameraState.FAILED: frozenset({CameraState.CLOSED}),
}
