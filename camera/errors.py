"""Retryable and fatal camera errors are different types so the supervisor can decide
without parsing messages (docs/architecture.md, errors)."""

from __future__ import annotations


class CameraError(Exception):
    """Base of every acquisition error."""


class CameraRetryableError(CameraError):
    """Transient: device lost, fetch timeout, stream hiccup. The supervisor reconnects."""


class CameraFatalError(CameraError):
    """Configuration or device mismatch that retrying cannot fix (absent device, bad node value)."""


class IncompleteFrameError(CameraRetryableError):
    """A buffer arrived with missing packets; it must never be inspected as if whole."""


class CameraSettingError(CameraFatalError):
    """A recipe camera setting the device refuses; names the node, the value and what is allowed."""

    def __init__(self, node: str, value: object, allowed: str) -> None:
        self.node = node
        self.value = value
        self.allowed = allowed
        super().__init__(f"camera node {node!r}: value {value!r} refused; device allows {allowed}")


class FetchTimeout(CameraRetryableError, TimeoutError):
    """No frame within the fetch timeout (no trigger, or the device went quiet)."""
