"""Synthetic bottle-cap images with known defects (the generator behind ``SyntheticSource``).

Pure and deterministic: everything random comes from the ``numpy.random.Generator`` passed
in; the belt texture, the noise tile and the lighting gradients are rendered once per frame
size from a fixed seed and cached, so one frame costs a few milliseconds at 1280x1024 (the
camera must keep up with its rate) and the same rng state always gives the same image.

The look is chosen so that a small detector has to discriminate, not just find contrast:
good parts carry dust specks, fibres, a glare spot and an embossed logo arc; defects are
``scratch`` (thin dark/bright line), ``dent`` (dark elliptical shading with a highlight rim)
and ``missing_cap`` (the bottle neck with its dark opening instead of a cap). Every defect
is at least ~20 px at 1280x1024 so it survives the 0.5 letterbox to 640x512.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from camera.frame import GroundTruth, GroundTruthDefect

KNOWN_CLASSES: tuple[str, ...] = ("scratch", "dent", "missing_cap")
SUPPORTED_FORMATS: tuple[str, ...] = ("Mono8", "RGB8")
_TEXTURE_SEED = 20240611
_BELT_PERIOD = 160  # px at full scale between belt seams; the texture wraps at this period
_N_GRADIENTS = 8
_RGB_TINT = (0.96, 1.0, 1.06, 0.0)  # a slightly bluish belt/light for RGB8; the model sees Mono8

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Textures:
    width: int
    height: int
    scale: float  # sizes are specified for 1280x1024 and scaled by this
    rail: int  # height of the dark side rails (top and bottom)
    period: int
    belt: np.ndarray  # (H, W + period) uint8, crop columns [off, off + W)
    noise: np.ndarray  # (H + 32, W + 32) uint8 in [0, ~14]
    gradients: tuple[np.ndarray, ...]  # (H, W) uint8 multiplicative light falloff (x/255)
    glare: np.ndarray  # (S, S) float32 soft disc in [0, 1]


@lru_cache(maxsize=8)
def _textures(width: int, height: int) -> _Textures:
    """Render the static parts of the scene once per frame size (fixed seed, cached)."""
    rng = np.random.default_rng(_TEXTURE_SEED)
    scale = min(width / 1280.0, height / 1024.0)
    period = max(8, round(_BELT_PERIOD * scale))
    tex_w = width + period
    # Rubber belt: grain (blurred noise) plus faint horizontal streaks and periodic seams.
    grain = rng.normal(0.0, 9.0, (height, tex_w)).astype(np.float32)
    grain = np.asarray(cv2.GaussianBlur(grain, (0, 0), 1.2), np.float32)
    streaks = cv2.GaussianBlur(rng.normal(0.0, 6.0, (height, 1)).astype(np.float32), (0, 0), 2.0)
    belt = 72.0 + grain + streaks
    seam_w = max(1, round(3 * scale))
    for x0 in range(0, tex_w, period):
        belt[:, x0 : x0 + seam_w] -= 22.0
        belt[:, x0 + seam_w : x0 + 2 * seam_w] += 8.0
    # Keep the texture periodic so the crop at offset `off` and `off + period` look the same.
    belt[:, width:] = belt[:, :period]
    rail = max(2, round(70 * scale))
    rails = 38.0 + rng.normal(0.0, 3.0, (rail, tex_w)).astype(np.float32)
    belt[:rail] = rails
    belt[height - rail :] = rails[::-1]
    edge = max(1, round(3 * scale))
    belt[rail - edge : rail] = 120.0
    belt[height - rail : height - rail + edge] = 120.0
    belt_u8 = np.clip(belt, 0, 255).astype(np.uint8)

    noise = np.clip(np.abs(rng.normal(0.0, 4.0, (height + 32, width + 32))), 0, 14).astype(np.uint8)

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    gradients = []
    for k in range(_N_GRADIENTS):
        ang = 2 * math.pi * k / _N_GRADIENTS
        u = (np.cos(ang) * (xs / width - 0.5) + np.sin(ang) * (ys / height - 0.5)) + 0.5
        r2 = ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2) * 2.0
        falloff = 1.0 - 0.22 * np.clip(u, 0, 1) - 0.12 * r2
        gradients.append(np.clip(falloff * 255.0, 0, 255).astype(np.uint8))

    size = 129
    g = cv2.getGaussianKernel(size, size / 5.0)
    glare = (g @ g.T).astype(np.float32)
    glare /= glare.max()
    return _Textures(width, height, scale, rail, period, belt_u8, noise, tuple(gradients), glare)


def _clip_box(box: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))


def _box_around(points: np.ndarray, pad: float, min_size: float) -> Box:
    x1, y1 = points.min(axis=0) - pad
    x2, y2 = points.max(axis=0) + pad
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = max(x2 - x1, min_size), max(y2 - y1, min_size)
    return (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))


def _pt(x: float, y: float) -> tuple[int, int]:
    return (round(x), round(y))


def _draw_cap(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float, b: int) -> None:
    """A knurled cap seen from above with an embossed logo arc (its angle shows the rotation)."""
    cv2.circle(img, _pt(cx, cy), round(r), b, -1, cv2.LINE_AA)
    rim = max(2, round(0.09 * r))
    cv2.circle(img, _pt(cx, cy), round(r - rim / 2), max(0, b - 38), rim, cv2.LINE_AA)
    theta0 = rng.uniform(0, 2 * math.pi)
    n_ridges = 72
    for k in range(0, n_ridges, 2):
        a = theta0 + 2 * math.pi * k / n_ridges
        c, s = math.cos(a), math.sin(a)
        cv2.line(img, _pt(cx + c * (r - rim), cy + s * (r - rim)), _pt(cx + c * r, cy + s * r), max(0, b - 60), 1)
    face = min(255, b + 12)
    cv2.circle(img, _pt(cx, cy), round(0.8 * r), face, -1, cv2.LINE_AA)
    cv2.circle(img, _pt(cx, cy), round(0.8 * r), max(0, b - 22), max(1, round(0.015 * r)), cv2.LINE_AA)
    deg = math.degrees(theta0)
    axes = (round(0.5 * r), round(0.5 * r))
    cv2.ellipse(img, _pt(cx, cy), axes, deg, 0, 110, max(0, face - 18), max(2, round(0.045 * r)), cv2.LINE_AA)
    cv2.circle(img, _pt(cx, cy), max(2, round(0.06 * r)), max(0, face - 15), -1, cv2.LINE_AA)


def _draw_open_neck(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float, b: int) -> float:
    """The bottle neck without its cap: tamper ring, thread arcs, rim, dark opening. Returns radius."""
    rr = r * rng.uniform(0.62, 0.74)
    cv2.circle(img, _pt(cx, cy), round(1.25 * rr), max(0, b - 45), -1, cv2.LINE_AA)  # tamper ring
    cv2.circle(img, _pt(cx, cy), round(1.12 * rr), max(0, b - 15), -1, cv2.LINE_AA)
    t = max(2, round(0.05 * rr))
    a0 = rng.uniform(0, 360)
    for k in range(3):  # thread starts
        cv2.ellipse(img, _pt(cx, cy), (round(1.06 * rr), round(1.06 * rr)), 0, a0 + 120 * k, a0 + 120 * k + 80, max(0, b - 55), t, cv2.LINE_AA)
    cv2.circle(img, _pt(cx, cy), round(rr), min(255, b + 15), -1, cv2.LINE_AA)  # lip
    cv2.circle(img, _pt(cx, cy), round(0.72 * rr), int(rng.integers(15, 40)), -1, cv2.LINE_AA)  # opening
    return 1.25 * rr


def _draw_scratch(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float, b: int, s: float) -> Box:
    length = rng.uniform(max(60 * s, 0.4 * r), 1.15 * r)
    ang = rng.uniform(0, math.pi)
    rad, phi = 0.55 * r * math.sqrt(rng.uniform(0, 1)), rng.uniform(0, 2 * math.pi)
    mx, my = cx + rad * math.cos(phi), cy + rad * math.sin(phi)
    d = np.array([math.cos(ang), math.sin(ang)])
    p1, p2 = np.array([mx, my]) - d * length / 2, np.array([mx, my]) + d * length / 2
    bend = np.array([-d[1], d[0]]) * rng.uniform(-0.08, 0.08) * length
    pts = np.stack([p1, (p1 + p2) / 2 + bend, p2])
    # Keep the scratch on the cap: pull points that would leave it back towards the centre.
    centre = np.array([cx, cy])
    off = pts - centre
    dist = np.linalg.norm(off, axis=1, keepdims=True)
    pts = np.where(dist > 0.85 * r, centre + off / np.maximum(dist, 1e-6) * 0.85 * r, pts)
    color = max(0, b - int(rng.integers(75, 110))) if rng.uniform() < 0.65 else 255
    thick = max(2, round(rng.choice([2, 3, 4]) * s))
    cv2.polylines(img, [np.round(pts).astype(np.int32)], False, color, thick, cv2.LINE_AA)
    return _box_around(pts, pad=thick + 3 * s, min_size=20 * s)


def _draw_dent(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float, s: float) -> Box:
    ax, ay = rng.uniform(13, 30) * s, rng.uniform(11, 24) * s
    ang = rng.uniform(0, 180)
    rad, phi = 0.7 * r * math.sqrt(rng.uniform(0, 1)), rng.uniform(0, 2 * math.pi)
    dx, dy = cx + rad * math.cos(phi), cy + rad * math.sin(phi)
    half = round(max(ax, ay) * 1.6 + 4)
    x0, y0 = round(dx) - half, round(dy) - half
    h, w = img.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + 2 * half), min(h, y0 + 2 * half)
    if xb <= xa or yb <= ya:
        return (dx - ax, dy - ay, dx + ax, dy + ay)
    mask = np.zeros((2 * half, 2 * half), np.float32)
    cv2.ellipse(mask, (half, half), (round(ax), round(ay)), ang, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), max(ax, ay) * 0.3), np.float32)
    hl = np.roll(mask, (-round(0.35 * ay), -round(0.35 * ax)), axis=(0, 1)) - mask
    depth = rng.uniform(0.35, 0.55)
    patch = img[ya:yb, xa:xb].astype(np.float32)
    m = mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
    hm = np.clip(hl[ya - y0 : yb - y0, xa - x0 : xb - x0], 0, 1)
    img[ya:yb, xa:xb] = np.clip(patch * (1.0 - depth * m) + 45.0 * hm, 0, 255).astype(np.uint8)
    ext = max(ax, ay) * 1.05 + 2 * s
    c, si = abs(math.cos(math.radians(ang))), abs(math.sin(math.radians(ang)))
    bw, bh = min(ext, ax * c + ay * si + 3 * s), min(ext, ax * si + ay * c + 3 * s)
    bw, bh = max(bw, 10 * s), max(bh, 10 * s)
    return (dx - bw, dy - bh, dx + bw, dy + bh)


def _nuisance(img: np.ndarray, rng: np.random.Generator, tex: _Textures, cx: float, cy: float, r: float) -> None:
    """Dust specks, fibres and a glare spot: what a good part looks like on a real line."""
    h, w = img.shape[:2]
    s = tex.scale
    for _ in range(int(rng.integers(0, 9))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        cv2.circle(img, _pt(x, y), max(1, round(rng.uniform(1, 3.2) * s)), int(rng.integers(10, 70)), -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):
        x, y = cx + rng.uniform(-r, r), cy + rng.uniform(-r, r)
        a, ln = rng.uniform(0, math.pi), rng.uniform(6, 14) * s
        cv2.line(img, _pt(x, y), _pt(x + ln * math.cos(a), y + ln * math.sin(a)), int(rng.integers(60, 110)), 1, cv2.LINE_AA)
    if rng.uniform() < 0.6:
        size = max(9, round(rng.uniform(40, 90) * s)) | 1
        sprite = cv2.resize(tex.glare, (size, size), interpolation=cv2.INTER_LINEAR)
        gx, gy = round(cx + rng.uniform(-0.5, 0.5) * r) - size // 2, round(cy + rng.uniform(-0.5, 0.5) * r) - size // 2
        xa, ya, xb, yb = max(0, gx), max(0, gy), min(w, gx + size), min(h, gy + size)
        if xb > xa and yb > ya:
            patch = img[ya:yb, xa:xb].astype(np.float32) + rng.uniform(18, 40) * sprite[ya - gy : yb - gy, xa - gx : xb - gx]
            img[ya:yb, xa:xb] = np.clip(patch, 0, 255).astype(np.uint8)


def generate_part(
    rng: np.random.Generator,
    width: int = 1280,
    height: int = 1024,
    pixel_format: str = "Mono8",
    defect_rate: float = 0.3,
    classes: tuple[str, ...] = KNOWN_CLASSES,
    out: np.ndarray | None = None,
    belt_offset: int | None = None,
) -> tuple[np.ndarray, GroundTruth]:
    """Render one part on the belt; returns (image, ground truth) with boxes in frame pixels.

    ``out`` (H, W) for Mono8 or (H, W, 3) for RGB8 is filled in place (a pooled camera
    buffer); ``belt_offset`` moves the belt (the source advances it per frame), random if None.
    """
    if pixel_format not in SUPPORTED_FORMATS:
        raise ValueError(f"pixel_format {pixel_format!r} not supported; use one of {SUPPORTED_FORMATS}")
    unknown = [c for c in classes if c not in KNOWN_CLASSES]
    if unknown:
        raise ValueError(f"unknown defect classes {unknown}; known: {KNOWN_CLASSES}")
    tex = _textures(width, height)
    s = tex.scale
    if pixel_format == "Mono8" and out is not None:
        if out.shape != (height, width) or out.dtype != np.uint8:
            raise ValueError(f"out buffer {out.shape} {out.dtype} does not fit Mono8 {height}x{width}")
        img = out
    else:
        img = np.empty((height, width), np.uint8)
    off = int(rng.integers(0, tex.period)) if belt_offset is None else belt_offset % tex.period
    np.copyto(img, tex.belt[:, off : off + width])

    r = rng.uniform(150, 230) * s
    margin = 12 * s
    cx = rng.uniform(r + margin, width - r - margin)
    cy = rng.uniform(min(tex.rail + r + margin, height / 2), max(height - tex.rail - r - margin, height / 2))
    b = int(rng.integers(150, 205))
    defective = bool(rng.uniform() < defect_rate) and len(classes) > 0
    kinds: list[str] = []
    if defective:
        if "missing_cap" in classes and (rng.uniform() < 1 / 3 or classes == ("missing_cap",)):
            kinds = ["missing_cap"]
        else:
            surface = [c for c in ("scratch", "dent") if c in classes]
            kinds = [str(rng.choice(surface))]
            if rng.uniform() < 0.25:
                kinds.append(str(rng.choice(surface)))

    shadow = (round(cx + 9 * s), round(cy + 11 * s))
    defects: list[GroundTruthDefect] = []
    if kinds == ["missing_cap"]:
        cv2.circle(img, shadow, round(0.85 * r), 45, -1, cv2.LINE_AA)
        pr = _draw_open_neck(img, rng, cx, cy, r, b)
        part_box = (cx - pr, cy - pr, cx + pr, cy + pr)
        defects.append(GroundTruthDefect("missing_cap", part_box))
    else:
        cv2.circle(img, shadow, round(r), 45, -1, cv2.LINE_AA)
        _draw_cap(img, rng, cx, cy, r, b)
        part_box = (cx - r, cy - r, cx + r, cy + r)
        for kind in kinds:
            box = _draw_scratch(img, rng, cx, cy, r, b, s) if kind == "scratch" else _draw_dent(img, rng, cx, cy, r, s)
            defects.append(GroundTruthDefect(kind, _clip_box(box, width, height)))
    _nuisance(img, rng, tex, cx, cy, r)

    # Lighting (direction + global gain) and sensor noise, all in uint8 OpenCV calls (fast).
    grad = tex.gradients[int(rng.integers(0, _N_GRADIENTS))]
    cv2.multiply(img, grad, dst=img, scale=rng.uniform(0.85, 1.15) / 255.0)
    nx, ny, mx, my = (int(v) for v in rng.integers(0, 32, 4))
    cv2.add(img, tex.noise[ny : ny + height, nx : nx + width], dst=img)
    cv2.subtract(img, tex.noise[my : my + height, mx : mx + width], dst=img)

    truth = GroundTruth(defective=bool(defects), defects=tuple(defects), part_box_xyxy=_clip_box(part_box, width, height))
    if pixel_format == "Mono8":
        return img, truth
    rgb = out if out is not None else np.empty((height, width, 3), np.uint8)
    if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"out buffer {rgb.shape} {rgb.dtype} does not fit RGB8 {height}x{width}")
    cv2.cvtColor(img, cv2.COLOR_GRAY2RGB, dst=rgb)
    cv2.multiply(rgb, _RGB_TINT, dst=rgb)  # type: ignore[call-overload]  # a cv::Scalar
    return rgb, truth
