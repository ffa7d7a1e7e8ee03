"""GenICam cameras through harvesters and any GenTL producer (``.cti``).

Why we do not call ``ImageAcquirer.fetch``: harvesters discards incomplete buffers silently
(and restarts its timeout after each one, so a stream of broken frames could block past the
deadline) and polls its event queue every millisecond. We wait on the data stream's GenTL
``EventManagerNewBuffer`` directly — one blocking wait bounded by the fetch timeout — so an
incomplete buffer becomes an ``INCOMPLETE`` frame (a fail-safe verdict for that part) and is
still queued back exactly once. Complete buffers are wrapped in harvesters' ``Buffer`` and go
back through ``Buffer.queue()`` from the frame's release callback.

No host copy: ``Frame.data`` is a numpy view on the producer's announced buffer memory.
The producer list is read once, at construction (``GENICAM_GENTL64_PATH`` by default).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from camera.config import CameraSettings
from camera.errors import CameraFatalError, CameraRetryableError, FetchTimeout
from camera.gentl import (
    HarvestersNodes,
    SharedHarvester,
    describe_device,
    device_info,
    producers_from_env,
    safe,
)
from camera.nodemap import PFNC_CODES
from camera.pixel_format import describe_pixel_format, supported_pixel_formats
from camera.session import DeviceLostError, RawFrame, Session
from camera.supervisor import SupervisedSource, SupervisorOptions

log = logging.getLogger(__name__)


class GenicamOptions(SupervisorOptions):
    cti: list[Path] = Field(
        default_factory=list, description="GenTL producers; empty: every .cti on GENICAM_GENTL64_PATH"
    )
    serial_number: str | None = None
    user_defined_name: str | None = None
    model: str | None = None
    index: int = Field(default=0, ge=0, description="n-th device among those matching the filters above")
    num_buffers: int = Field(default=8, ge=2, le=256)
    probe_node: str | None = Field(
        default="Width",
        description="node the liveness probe reads past GenApi's cache (None: rely on stream errors)",
    )


class GenicamSession(Session):
    """One ``ImageAcquirer`` with its data stream; buffers are requeued exactly once."""

    background_close = False  # destroy() is quick, and update() must not race it

    def __init__(self, ia: Any, probe_node: str | None, shared: SharedHarvester) -> None:
        from genicam import gentl

        self._shared = shared
        self._gentl = gentl
        self._ia = ia
        self._nm = ia.remote_device.node_map
        self.nodes = HarvestersNodes(self._nm)
        self._probe_node = probe_node
        self._monitor: Any = None
        self._ts_mode: str | None = None
        self._generation = 0  # bumped on stop: buffers of an older generation were revoked
        self._gen_lock = threading.Lock()

    def start_stream(self) -> None:
        self._ia.start()
        monitors = list(self._ia._new_buffer_event_monitor_dict.values())  # see module docstring
        if len(monitors) != 1:
            raise CameraFatalError(f"expected one image data stream, the device has {len(monitors)}")
        self._monitor = monitors[0]

    def stop_stream(self) -> None:
        with self._gen_lock:
            self._generation += 1
        self._monitor = None
        self._ia.stop()

    def stream_info(self) -> dict[str, int]:
        """The producer's own buffer counters (GenTL STREAM_INFO_*), for leak checks and HMI."""
        ds = self._ia.data_streams[0]
        out: dict[str, int] = {}
        for name in ("num_announced", "num_queued", "num_delivered", "num_awaiting_delivery", "num_underrun"):
            try:
                out[name] = int(getattr(ds, name))
            except Exception:
                out[name] = -1
        return out

    def _requeuer(self, requeue: Any) -> Any:
        generation = self._generation

        def release() -> None:
            with self._gen_lock:
                if generation != self._generation:
                    return  # the stream was stopped: the producer already took every buffer back
                try:
                    requeue()
                except Exception as exc:  # a lost device: nothing left to give back to
                    log.debug("requeue after device loss: %s", exc)

        return release

    def grab(self, timeout_s: float) -> RawFrame:
        monitor = self._monitor
        generation = self._generation
        if monitor is None:
            raise CameraRetryableError("stream not started")
        try:
            monitor.update_event_data(max(1, int(timeout_s * 1000)))
        except self._gentl.TimeoutException:
            raise FetchTimeout(f"no buffer within {timeout_s:.3f} s") from None
        except self._gentl.GenericException as exc:
            if generation != self._generation:  # stopped under us (settings change): not a loss
                raise CameraRetryableError("stream restarted during fetch") from exc
            raise DeviceLostError(f"GenTL new-buffer event failed: {exc}") from exc
        raw = monitor.buffer
        t_ready = time.perf_counter()
        raw_release = self._requeuer(lambda: raw.parent.queue_buffer(raw))
        frame_id = safe(lambda: int(raw.frame_id))
        ts = self._timestamp(raw)
        try:
            complete = bool(raw.is_complete())
        except self._gentl.GenericException:
            complete = False
        if not complete:
            return self._incomplete(raw_release, frame_id, ts, t_ready)
        try:
            view = self._view(raw)
        except Exception as exc:  # unusable buffer info: never inspect it, give it back
            log.warning("buffer without usable image info, returned as incomplete: %s", exc)
            return self._incomplete(raw_release, frame_id, ts, t_ready)
        if view is None:
            return self._incomplete(raw_release, frame_id, ts, t_ready)
        data, fmt, width, height, requeue = view
        return RawFrame(data, fmt, width, height, frame_id, ts, t_ready, True, self._requeuer(requeue))

    def _timestamp(self, raw: Any) -> int:
        """Device timestamp in ns; which GenTL info works is found once per session (an
        unsupported one costs a C++ exception, ~0.1 ms, on every frame otherwise)."""
        if self._ts_mode is None:
            self._ts_mode = "none"
            for mode in ("timestamp_ns", "timestamp"):
                if safe(lambda m=mode: getattr(raw, m)) is not None:
                    self._ts_mode = mode
                    break
        if self._ts_mode == "none":
            return 0
        return int(safe(lambda: getattr(raw, self._ts_mode)) or 0)

    def _view(self, raw: Any) -> tuple[np.ndarray, str, int, int, Any] | None:
        """(pixels, PFNC name, width, height, requeue) for a complete buffer.

        Fast path (~10 us): the GenTL buffer info (PFNC pixel format, size, image offset)
        and a numpy view on the announced memory; requeue is ``DataStream.queue_buffer``,
        exactly what harvesters' ``Buffer.queue()`` calls. Producers that do not report that
        info (or pad lines, or deliver multi-part payloads) go through harvesters' ``Buffer``
        payload parser (~0.25 ms) and its ``Buffer.queue()``.
        """
        fast = safe(lambda: (int(raw.pixel_format), int(raw.width), int(raw.height), int(raw.image_offset)))
        padding = safe(lambda: int(raw.padding_x)) or 0
        if fast is not None and fast[0] in PFNC_CODES and padding == 0:
            code, width, height, offset = fast
            fmt = PFNC_CODES[code]
            channels = describe_pixel_format(fmt).channels
            need = width * height * channels
            memory = raw.raw_buffer
            if offset + need > len(memory):
                return None
            flat = np.frombuffer(memory, dtype=np.uint8, count=need, offset=offset)
            requeue = lambda: raw.parent.queue_buffer(raw)  # noqa: E731
        else:
            from harvesters.core import Buffer

            buffer = Buffer(module=raw, node_map=self._nm, acquire=self._ia)
            component = buffer.payload.components[0]
            fmt = str(component.data_format)
            width, height = int(component.width), int(component.height)
            if fmt not in supported_pixel_formats():
                buffer.queue()
                raise CameraFatalError(
                    f"device delivers pixel format {fmt!r}; set camera.pixel_format to one of "
                    f"{', '.join(supported_pixel_formats())}"
                )
            channels = describe_pixel_format(fmt).channels
            need = width * height * channels
            flat = component.data
            if flat is None or flat.size < need:
                return None
            requeue = buffer.queue
        shape = (height, width) if channels == 1 else (height, width, channels)
        return np.asarray(flat[:need]).reshape(shape), fmt, width, height, requeue

    def _incomplete(self, release: Any, frame_id: int | None, ts: int, t_ready: float) -> RawFrame:
        fmt = str(safe(lambda: self._nm.PixelFormat.value) or "Mono8")
        width = safe(lambda: int(self._nm.Width.value)) or 0
        height = safe(lambda: int(self._nm.Height.value)) or 0
        return RawFrame(None, fmt, width, height, frame_id, ts, t_ready, False, release)

    def probe(self) -> bool:
        """Read the probe node past GenApi's cache, i.e. through the device's port; twice,
        so one busy moment is not taken for a lost device."""
        if self._probe_node is None:
            return True
        for _ in range(2):
            try:
                node = self._nm.get_node(self._probe_node)
                node.get_value(ignore_cache=True) if hasattr(node, "get_value") else node.value
                return True
            except Exception as exc:
                log.debug("probe read of %s failed: %s", self._probe_node, exc)
        return False

    def close(self, lost: bool) -> None:
        with self._gen_lock:
            self._generation += 1
        try:
            if not lost:
                self._ia.stop()
        finally:
            try:
                self._ia.destroy()
            finally:
                with self._shared.lock:
                    self._shared.open_devices -= 1


class GenicamSource(SupervisedSource):
    """A GenICam camera behind any GenTL producer, selected by serial, user name or model+index."""

    Options = GenicamOptions

    def __init__(
        self, camera_id: str, options: GenicamOptions, settings: CameraSettings | None = None
    ) -> None:
        self.options = options
        self.producers = list(options.cti) or producers_from_env(os.environ)  # read once, here
        if not self.producers:
            raise CameraFatalError(
                f"camera {camera_id!r}: no GenTL producer; set options.cti or GENICAM_GENTL64_PATH"
            )
        missing = [str(p) for p in self.producers if not Path(p).is_file()]
        if missing:
            raise CameraFatalError(f"camera {camera_id!r}: GenTL producer not found: {', '.join(missing)}")
        self._shared: SharedHarvester | None = None
        super().__init__(camera_id, settings, options, self._open_session)

    def _harvester(self) -> SharedHarvester:
        if self._shared is None:
            self._shared = SharedHarvester.acquire(self.producers)
        return self._shared

    def list_devices(self) -> list[dict[str, Any]]:
        """The devices the producers see (vendor, model, serial_number, user_defined_name, id_)."""
        keys = ("vendor", "model", "serial_number", "user_defined_name", "id_")
        return [{k: device_info(i, k) for k in keys} for i in self._harvester().device_infos(refresh=False)]

    def _select(self, infos: list[Any]) -> int:
        o = self.options
        matches = [
            n
            for n, i in enumerate(infos)
            if (o.serial_number is None or str(device_info(i, "serial_number")) == o.serial_number)
            and (o.user_defined_name is None or device_info(i, "user_defined_name") == o.user_defined_name)
            and (o.model is None or device_info(i, "model") == o.model)
        ]
        if o.index < len(matches):
            return matches[o.index]
        wanted = ", ".join(
            f"{k}={v!r}"
            for k, v in (
                ("serial_number", o.serial_number),
                ("user_defined_name", o.user_defined_name),
                ("model", o.model),
            )
            if v is not None
        )
        found = "; ".join(describe_device(i) for i in infos) or "none"
        raise CameraFatalError(
            f"camera {self.camera_id!r}: no device matching {wanted or 'any'} (index {o.index}); "
            f"{len(infos)} found: {found}"
        )

    def _open_session(self) -> GenicamSession:
        shared = self._harvester()
        with shared.lock:
            try:
                infos = shared.device_infos(
                    refresh=self.counters.reconnects > 0 or self.state.value == "reconnecting"
                )
            except Exception as exc:
                raise CameraRetryableError(
                    f"camera {self.camera_id!r}: device enumeration failed: {exc}"
                ) from exc
            index = self._select(infos)
            try:
                ia = shared.harvester.create(index)
            except Exception as exc:
                raise CameraRetryableError(f"camera {self.camera_id!r}: cannot open device: {exc}") from exc
            shared.open_devices += 1
        ia.num_buffers = self.options.num_buffers
        return GenicamSession(ia, self.options.probe_node, shared)

    def stream_info(self) -> dict[str, int]:
        """The producer's buffer counters of the current session ({} while reconnecting)."""
        session = self._session
        return session.stream_info() if isinstance(session, GenicamSession) else {}

    def close(self) -> None:
        super().close()
        if self._shared is not None:
            self._shared.release()
            self._shared = None
