"""Which cameras can this computer reach? One discovery function per backend.

``discover_gentl`` asks GenTL producers through harvesters (kind ``genicam``);
``discover_aravis`` asks Aravis (kind ``aravis``: GigE Vision, and USB3 Vision where Aravis
has it). Both return the same record, so a listing can show them side by side.

Why the pixel formats are read by opening each camera: discovery packets carry vendor, model,
serial and address only; what the camera can deliver is in its GenICam node map. A camera that
cannot be opened (another process streams from it, no access rights) is still listed, with its
pixel formats unknown, so a listing never hides a camera a running station is using.

A backend that is not installed raises :class:`DiscoveryUnavailable` with what to install: the
caller reports it and carries on with the other backend.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from camera.gentl import SharedHarvester, device_info, safe
from camera.gige import load_aravis


class DiscoveryUnavailable(Exception):
    """The backend's library (or anything to ask with it) is not there; the text says what to do."""


@dataclass(frozen=True)
class DiscoveredCamera:
    backend: Literal["genicam", "aravis"]  # the ``kind`` of a station camera that opens it
    vendor: str
    model: str
    serial_number: str
    address: str  # IP for GigE Vision; the device id where the transport has no address
    device_id: str
    transport: str  # e.g. GigEVision, USB3Vision, or the GenTL producer's TL type
    pixel_formats: tuple[str, ...] | None  # None: the camera could not be opened to ask
    producer: str | None = None  # the GenTL producer (.cti) that reached it

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pixel_formats"] = None if self.pixel_formats is None else list(self.pixel_formats)
        return data


def discover_gentl(producers: list[Path]) -> list[DiscoveredCamera]:
    """Every device of every producer, in producer order then the producer's own order."""
    try:
        import genicam  # noqa: F401
        import harvesters.core  # noqa: F401
    except ImportError as exc:
        raise DiscoveryUnavailable(f"harvesters/genicam not installed ({exc}): pip install harvesters genicam") from None
    if not producers:
        raise DiscoveryUnavailable("no GenTL producer: give a .cti file, or set GENICAM_GENTL64_PATH to the folders holding them")
    missing = [str(p) for p in producers if not Path(p).is_file()]
    if missing:
        raise DiscoveryUnavailable(f"GenTL producer not found: {', '.join(missing)}")
    found: list[DiscoveredCamera] = []
    for producer in producers:
        shared = SharedHarvester.acquire([producer])
        try:
            with shared.lock:
                infos = shared.device_infos(refresh=True)
                found += [_gentl_camera(shared, index, info, producer) for index, info in enumerate(infos)]
        finally:
            shared.release()
    return found


def _gentl_camera(shared: SharedHarvester, index: int, info: Any, producer: Path) -> DiscoveredCamera:
    device_id = str(device_info(info, "id_") or "")
    address, formats = device_id, None
    if shared.open_devices == 0:  # opening one while a source of this process holds another would be refused
        acquirer = safe(lambda: shared.harvester.create(index))
        if acquirer is not None:
            try:
                formats = safe(lambda: tuple(str(s) for s in acquirer.remote_device.node_map.PixelFormat.symbolics))
                ip = safe(lambda: int(acquirer.device.node_map.GevDeviceIPAddress.value))
                if ip:
                    address = str(ipaddress.IPv4Address(ip))
            finally:
                acquirer.destroy()
    return DiscoveredCamera(
        backend="genicam",
        vendor=str(device_info(info, "vendor") or ""),
        model=str(device_info(info, "model") or ""),
        serial_number=str(device_info(info, "serial_number") or ""),
        address=address,
        device_id=device_id,
        transport=str(device_info(info, "tl_type") or ""),
        pixel_formats=formats,
        producer=str(producer),
    )


def discover_aravis() -> list[DiscoveredCamera]:
    """Aravis' discovery (a broadcast on every interface; about a second)."""
    try:
        ar = load_aravis()
    except (ImportError, ValueError) as exc:
        raise DiscoveryUnavailable(
            f"Aravis 0.8 not available ({exc}): apt-get install gir1.2-aravis-0.8 and pip install 'PyGObject<3.51'"
        ) from None
    ar.update_device_list()
    found = []
    for i in range(ar.get_n_devices()):
        device_id = str(ar.get_device_id(i) or "")
        found.append(
            DiscoveredCamera(
                backend="aravis",
                vendor=str(ar.get_device_vendor(i) or ""),
                model=str(ar.get_device_model(i) or ""),
                serial_number=str(ar.get_device_serial_nbr(i) or ""),
                address=str(ar.get_device_address(i) or device_id),
                device_id=device_id,
                transport=str(ar.get_device_protocol(i) or ""),
                pixel_formats=_aravis_pixel_formats(ar, device_id),
            )
        )
    return found


def _aravis_pixel_formats(ar: Any, device_id: str) -> tuple[str, ...] | None:
    camera = safe(lambda: ar.Camera.new(device_id))
    if camera is None:
        return None
    names = safe(camera.dup_available_pixel_formats_as_strings)
    return None if names is None else tuple(str(n) for n in names)
