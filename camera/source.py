"""The ``FrameSource`` interface and its registry.

One adapter per device family behind one small interface (Roboflow inference's
``VideoFrameProducer``); backends are found by name and imported lazily so that the CPU
demo never imports harvesters or GObject.
"""

from __future__ import annotations

import pkgutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from camera.config import CameraConfig, CameraSettings
from camera.frame import Frame
from camera.guarded_state import GuardedState
from camera.states import CAMERA_TRANSITIONS, CameraState


@dataclass
class SourceCounters:
    """Mutable counters, read by the station and the HMI; guarded by the source's ``_counters_lock``."""

    frames: int = 0
    incomplete: int = 0
    dropped: int = 0
    timeouts: int = 0
    reconnects: int = 0

    def snapshot(self) -> dict[str, int]:
        return dict(self.__dict__)


class FrameSource(ABC):
    """A camera (or a simulation of one).

    Lifecycle: construct (validated options) → ``start()`` → ``fetch()``… → ``stop()`` →
    ``close()``. ``fetch`` blocks at most ``timeout_s`` and raises
    :class:`camera.errors.CameraRetryableError` (or its ``FetchTimeout``) instead of
    blocking forever. An incomplete buffer is returned as a ``Frame`` with
    ``status=INCOMPLETE`` so that the station can issue a fail-safe verdict for that part.

    The state moves only along :data:`camera.states.CAMERA_TRANSITIONS`: ``_set_state``
    refuses anything else (logged, the state kept; see :mod:`camera.guarded_state` for why it
    does not raise).
    """

    Options: ClassVar[type[BaseModel]]

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self.counters = SourceCounters()
        self._counters_lock = threading.Lock()
        self._lifecycle = GuardedState(f"camera {camera_id}", CameraState.CLOSED, CAMERA_TRANSITIONS)

    @property
    def state(self) -> CameraState:
        return self._lifecycle.state

    def add_state_listener(self, listener: Callable[[CameraState, CameraState], None]) -> None:
        """Hear every state change as ``(before, after)`` (HMI events, tests); called on the
        thread that changes the state, so it must return at once."""
        self._lifecycle.add_listener(listener)

    def _set_state(self, state: CameraState) -> bool:
        """Go to ``state`` if the table allows it; False (and logged) when it does not."""
        return self._lifecycle.advance(state)

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def fetch(self, timeout_s: float) -> Frame: ...

    @abstractmethod
    def stop(self) -> None: ...

    def close(self) -> None:
        self.stop()
        self._set_state(CameraState.CLOSED)

    def validate_settings(self, settings: CameraSettings) -> None:  # noqa: B027 - optional hook
        """Raise ``CameraSettingError`` if the device cannot take ``settings``; change nothing."""

    def apply_settings(self, settings: CameraSettings) -> None:
        """Validate, then apply ``settings``. The running settings stay on refusal."""
        self.validate_settings(settings)

    def host_buffers(self) -> list[Any]:
        """The arrays frames are delivered in, where this source owns them (a GPU engine
        page-locks them once, up front, instead of on their second use mid-production)."""
        return []

    def trigger(self, part_id: int | None = None) -> None:
        """Software trigger; ``part_id`` travels with the frame it causes."""
        raise NotImplementedError(f"{type(self).__name__} has no software trigger")

    def __enter__(self) -> FrameSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_REGISTRY: dict[str, str] = {
    "synthetic": "camera.synthetic:SyntheticSource",
    "replay": "camera.replay:ReplaySource",
    "genicam": "camera.genicam:GenicamSource",
    "aravis": "camera.aravis:AravisSource",
}


def register_source(kind: str, target: str) -> None:
    """Register ``"module:Class"`` under ``kind`` (plugins, tests)."""
    _REGISTRY[kind] = target


def source_class(kind: str) -> type[FrameSource]:
    try:
        target = _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown camera kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    cls: type[FrameSource] = pkgutil.resolve_name(target)
    return cls


def validate_options(config: CameraConfig) -> BaseModel:
    """Validate backend options without opening the device (used by ``linecheck validate``)."""
    return source_class(config.kind).Options.model_validate(config.options)


def open_source(config: CameraConfig, settings: CameraSettings | None = None, **extra: Any) -> FrameSource:
    cls = source_class(config.kind)
    options = cls.Options.model_validate(config.options)
    source: FrameSource = cls(config.id, options, settings, **extra)  # type: ignore[call-arg]
    return source
