"""GigE Vision cameras through Aravis 0.8 (PyGObject + gir1.2-aravis-0.8).

Why these choices:

* Buffers are a pool of numpy arrays we own, handed to Aravis as preallocated memory
  (``Aravis.Buffer.new(size, preallocated)``, the GI binding of ``arv_buffer_new``; the
  ``new_preallocated`` alias is not introspectable). The receive thread writes straight into
  them, ``Frame.data`` is a view, and the GPU path can pin the same arrays once
  (:meth:`AravisSource.buffer_pool`).
* ``timeout_pop_buffer`` is a blocking wait bounded by the fetch timeout (GIL released).
* Liveness: Aravis' own GVCP timeouts are 0.5 s × 5 retries and ``control-lost`` fires
  seconds late, so the supervisor's probe sends its own GVCP READREG of the bootstrap
  ``Version`` register (allowed without control privilege) with a short timeout.
* A lost device is released on a reaper thread: its finalizers wait for GVCP timeouts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import numpy as np
from pydantic import Field

from camera.config import CameraSettings
from camera.errors import CameraFatalError, CameraRetryableError, FetchTimeout
from camera.gige import GVCP_PORT, AravisNodes, gvcp_alive, load_aravis
from camera.nodemap import PFNC_CODES
from camera.pixel_format import describe_pixel_format
from camera.session import DeviceLostError, RawFrame, Session
from camera.supervisor import SupervisedSource, SupervisorOptions

log = logging.getLogger(__name__)


class AravisOptions(SupervisorOptions):
    address: str | None = Field(default=None, description="camera IP; skips discovery (fastest reconnect)")
    device_id: str | None = Field(default=None, description="Aravis device id, e.g. 'Aravis-Fake-GV01'")
    serial_number: str | None = None
    model: str | None = None
    index: int = Field(default=0, ge=0, description="n-th device among those matching the filters")
    n_buffers: int = Field(default=16, ge=2, le=1024)
    packet_size: int | None = Field(default=None, ge=576, le=16404, description="None: negotiate")
    packet_resend: bool = True
    packet_timeout_ms: float | None = Field(default=None, gt=0)
    frame_retention_ms: float | None = Field(default=None, gt=0)
    socket_buffer_size: int | None = Field(default=None, gt=0)
    gvcp_port: int = Field(default=GVCP_PORT, ge=1, le=65535)
    probe_timeout_ms: float = Field(default=150, gt=0)
    probe_tries: int = Field(default=2, ge=1)


_KEEP_ALIVE: list[Any] = []  # buffer pools of streams that were not finalized (see _drop_stream)


def _aligned(nbytes: int, align: int = 4096) -> np.ndarray:
    """Page-aligned array so the GPU path can register (pin) it without an extra copy."""
    raw = np.empty(nbytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + nbytes]


def _stream_drops(stream: Any) -> int:
    return int(stream.get_info_uint64_by_name("n_underruns")) + int(
        stream.get_info_uint64_by_name("n_missing_frames")
    )


class AravisSession(Session):
    counts_drops = True  # Aravis counts underruns and frames whose packets never came

    def __init__(self, camera: Any, address: str, options: AravisOptions) -> None:
        self._ar = load_aravis()
        self._cam = camera
        self._dev = camera.get_device()
        self.nodes = AravisNodes(self._dev)
        self.address = address
        self._opt = options
        self._stream: Any = None
        self._pool: dict[int, tuple[Any, np.ndarray]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._control_lost = threading.Event()
        self._handler = self._dev.connect("control-lost", lambda _dev: self._control_lost.set())
        self._geometry = ("Mono8", 0, 0)
        self._underruns_base = 0
        if options.packet_size is not None:
            camera.gv_set_packet_size(options.packet_size)
        else:
            camera.gv_auto_packet_size()

    def start_stream(self) -> None:
        ar = self._ar
        opt = self._opt
        cam = self._cam
        payload = int(cam.get_payload())
        stream = cam.create_stream(None, None)
        if stream is None:
            raise CameraRetryableError("Aravis could not create a stream")
        stream.set_property(
            "packet-resend",
            ar.GvStreamPacketResend.ALWAYS if opt.packet_resend else ar.GvStreamPacketResend.NEVER,
        )
        if opt.packet_timeout_ms is not None:
            stream.set_property("packet-timeout", int(opt.packet_timeout_ms * 1000))
        if opt.frame_retention_ms is not None:
            stream.set_property("frame-retention", int(opt.frame_retention_ms * 1000))
        if opt.socket_buffer_size is not None:
            stream.set_property("socket-buffer", ar.GvStreamSocketBuffer.FIXED)
            stream.set_property("socket-buffer-size", opt.socket_buffer_size)
        pool: dict[int, tuple[Any, np.ndarray]] = {}
        for _ in range(opt.n_buffers):
            array = _aligned(payload)
            buffer = ar.Buffer.new(payload, array.ctypes.data)  # preallocated: Aravis writes into our array
            pool[id(buffer)] = (buffer, array)
            stream.push_buffer(buffer)
        fmt = str(self.nodes.get("PixelFormat"))
        self._geometry = (fmt, int(self.nodes.get("Width")), int(self.nodes.get("Height")))
        with self._lock:
            self._stream, self._pool = stream, pool
        cam.start_acquisition()

    def _drop_stream(self) -> None:
        """Finalize the stream *before* its buffer memory may go.

        Aravis' receive thread writes into our arrays until the stream is finalized; freeing
        them earlier is a use-after-free (a segfault under packet loss, where buffers stay
        half-filled). So: wait for in-flight grabs (they hold a reference), drop the last
        reference here, and check with a GObject weak reference that the stream is gone.
        Should it survive (an unexpected reference), its arrays are kept for the process'
        lifetime instead: a leak, never a crash.
        """
        with self._lock:
            self._generation += 1
            while self._inflight:  # a grab in flight holds the stream; let it return first
                self._idle.wait()
            stream, self._stream = self._stream, None
            pool, self._pool = self._pool, {}
        if stream is None:
            return
        finalized: list[bool] = []
        weak = stream.weak_ref(lambda *_: finalized.append(True))
        self._underruns_base += _stream_drops(stream)
        del stream
        if not finalized:
            log.warning("Aravis stream outlived its last reference; keeping its %d buffers", len(pool))
            _KEEP_ALIVE.append((weak, pool))

    def stop_stream(self) -> None:
        try:
            self._cam.stop_acquisition()
        finally:
            self._drop_stream()

    def buffer_pool(self) -> list[np.ndarray]:
        return [array for _buf, array in self._pool.values()]

    def producer_dropped(self) -> int:
        with self._lock:  # no local reference may outlive close() (see grab)
            return self._underruns_base + (_stream_drops(self._stream) if self._stream is not None else 0)

    def stream_info(self) -> dict[str, int]:
        with self._lock:
            return self._stream_info_locked()

    def _stream_info_locked(self) -> dict[str, int]:
        stream = self._stream
        if stream is None:
            return {}
        names = (
            "n_completed_buffers",
            "n_failures",
            "n_underruns",
            "n_timeouts",
            "n_missing_frames",
            "n_missing_packets",
            "n_resent_packets",
            "n_received_packets",
        )
        info = {n: int(stream.get_info_uint64_by_name(n)) for n in names}
        n_in, n_out = stream.get_n_buffers()
        info.update(n_input_buffers=int(n_in), n_output_buffers=int(n_out), n_pool=len(self._pool))
        return info

    def _requeuer(self, buffer: Any) -> Any:
        generation = self._generation

        def release() -> None:
            with self._lock:
                if generation != self._generation or self._stream is None:
                    return  # stream gone: its buffers died with it, the array is just memory now
                self._stream.push_buffer(buffer)

        return release

    def grab(self, timeout_s: float) -> RawFrame:
        with self._lock:
            stream = self._stream
            if stream is None:
                raise CameraRetryableError("stream not started")
            self._inflight += 1
        try:
            buffer = stream.timeout_pop_buffer(max(1, int(timeout_s * 1e6)))
        finally:
            # never the last reference: close() waits for in-flight grabs before dropping its
            # own, so a dead device's stream is finalized on the reaper, not on the hot path
            del stream
            with self._lock:
                self._inflight -= 1
                self._idle.notify_all()
        if buffer is None:
            if self._control_lost.is_set():
                raise DeviceLostError(f"GigE Vision control lost ({self.address})")
            raise FetchTimeout(f"no buffer within {timeout_s:.3f} s")
        t_ready = time.perf_counter()
        release = self._requeuer(buffer)
        entry = self._pool.get(id(buffer))
        ts = int(buffer.get_timestamp())
        frame_id = int(buffer.get_frame_id())
        fmt, width, height = self._geometry
        if entry is None or buffer.get_status() != self._ar.BufferStatus.SUCCESS:
            return RawFrame(None, fmt, width, height, frame_id, ts, t_ready, False, release)
        fmt = PFNC_CODES.get(int(buffer.get_image_pixel_format()), "")
        if not fmt:
            release()
            raise CameraFatalError(
                f"device delivers pixel format 0x{int(buffer.get_image_pixel_format()):08x}; "
                f"set camera.pixel_format to one of {', '.join(PFNC_CODES.values())}"
            )
        width, height = int(buffer.get_image_width()), int(buffer.get_image_height())
        channels = describe_pixel_format(fmt).channels
        array = entry[1]
        need = width * height * channels
        if need > array.size:
            return RawFrame(None, fmt, width, height, frame_id, ts, t_ready, False, release)
        shape = (height, width) if channels == 1 else (height, width, channels)
        return RawFrame(array[:need].reshape(shape), fmt, width, height, frame_id, ts, t_ready, True, release)

    def probe(self) -> bool:
        if self._control_lost.is_set():
            return False
        return gvcp_alive(
            self.address, self._opt.gvcp_port, self._opt.probe_timeout_ms / 1000, self._opt.probe_tries
        )

    def close(self, lost: bool) -> None:
        if not lost:
            try:
                self._cam.stop_acquisition()
            except Exception as exc:
                log.debug("stop_acquisition on close: %s", exc)
        with contextlib.suppress(Exception):
            self._dev.disconnect(self._handler)
        # dropping the last references finalizes the stream and device (GVCP writes that time
        # out on a dead camera; PyGObject releases the GIL meanwhile)
        self._drop_stream()
        self._dev = None
        self._cam = None
        self.nodes = None  # type: ignore[assignment]


class AravisSource(SupervisedSource):
    """A GigE Vision camera by address, device id, serial number, or model + index."""

    Options = AravisOptions

    def __init__(
        self, camera_id: str, options: AravisOptions, settings: CameraSettings | None = None
    ) -> None:
        self.options = options
        super().__init__(camera_id, settings, options, self._open_session)

    @staticmethod
    def list_devices() -> list[dict[str, str]]:
        """Discovery (broadcast on every interface): id, serial_number, model, vendor, address, protocol."""
        ar = load_aravis()
        ar.update_device_list()
        return [
            {
                "id": ar.get_device_id(i),
                "serial_number": ar.get_device_serial_nbr(i),
                "model": ar.get_device_model(i),
                "vendor": ar.get_device_vendor(i),
                "address": ar.get_device_address(i),
                "protocol": ar.get_device_protocol(i),
            }
            for i in range(ar.get_n_devices())
        ]

    def _absent(self, wanted: str) -> CameraFatalError:
        devices = self.list_devices()
        found = "; ".join(
            f"{d['vendor']} {d['model']} serial={d['serial_number']!r} id={d['id']!r} at {d['address']}"
            for d in devices
        )
        return CameraFatalError(
            f"camera {self.camera_id!r}: no device matching {wanted}; {len(devices)} found: {found or 'none'}"
        )

    def _locate(self) -> tuple[str, str]:
        """(name to open, address to probe)."""
        o = self.options
        if o.address is not None:
            if not gvcp_alive(o.address, o.gvcp_port, o.probe_timeout_ms / 1000, o.probe_tries):
                if self.state.value == "closed":  # at start an absent camera is a configuration error
                    raise self._absent(f"address={o.address!r}")
                raise CameraRetryableError(f"camera {self.camera_id!r}: no GVCP answer from {o.address}")
            return o.address, o.address
        devices = self.list_devices()
        matches = [
            d
            for d in devices
            if (o.device_id is None or d["id"] == o.device_id)
            and (o.serial_number is None or d["serial_number"] == o.serial_number)
            and (o.model is None or d["model"] == o.model)
        ]
        if o.index >= len(matches):
            wanted = ", ".join(
                f"{k}={v!r}"
                for k, v in (
                    ("device_id", o.device_id),
                    ("serial_number", o.serial_number),
                    ("model", o.model),
                )
                if v is not None
            )
            raise self._absent(f"{wanted or 'any'} (index {o.index})")
        chosen = matches[o.index]
        return chosen["id"], chosen["address"]

    def _open_session(self) -> AravisSession:
        name, address = self._locate()
        ar = load_aravis()
        try:
            camera = ar.Camera.new(name)
        except Exception as exc:
            raise CameraRetryableError(f"camera {self.camera_id!r}: cannot open {name}: {exc}") from exc
        try:
            return AravisSession(camera, address, self.options)
        except Exception as exc:
            raise CameraRetryableError(f"camera {self.camera_id!r}: cannot configure {name}: {exc}") from exc

    def buffer_pool(self) -> list[np.ndarray]:
        """The arrays Aravis streams into (pin them once for zero-copy upload); [] while away."""
        session = self._session
        return session.buffer_pool() if isinstance(session, AravisSession) else []

    def stream_info(self) -> dict[str, int]:
        session = self._session
        return session.stream_info() if isinstance(session, AravisSession) else {}
