"""ReplaySource against a temporary folder of real PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from camera.config import CameraConfig, CameraSettings
from camera.errors import CameraFatalError, FetchTimeout
from camera.replay import ReplaySource
from camera.source import CameraState, open_source


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three 48x64 images: gray, BGR colour, BGRA; pixel values encode the file index."""
    cv2.imwrite(str(tmp_path / "a0.png"), np.full((48, 64), 10, np.uint8))
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "a1.png"), bgr)
    bgra = np.zeros((48, 64, 4), np.uint8)
    bgra[..., 0] = 90  # blue
    bgra[..., 3] = 255
    cv2.imwrite(str(tmp_path / "a2.png"), bgra)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def make(folder: Path, **options: object) -> ReplaySource:
    return ReplaySource("rp", ReplaySource.Options.model_validate({"folder": folder, "rate_hz": 0, **options}))


def test_plays_files_in_name_order_and_loops(folder: Path) -> None:
    source = open_source(CameraConfig(id="rp", kind="replay", options={"folder": str(folder), "rate_hz": 0}))
    assert isinstance(source, ReplaySource) and source.state is CameraState.CONNECTED
    with source:
        means = []
        for expected_part in range(1, 5):
            with source.fetch(1.0) as frame:
                assert frame.part_id == expected_part
                assert frame.data.shape == (48, 64) and frame.pixel_format == "Mono8"
                assert frame.ground_truth is None
                means.append(int(frame.data.mean()))
    assert means[0] == 10 and means[3] == 10  # looped back to the first file
    assert means[1] == round(0.299 * 200)  # BGR → gray with OpenCV weights
    assert means[2] == round(0.114 * 90)


def test_rgb8_conversion(folder: Path) -> None:
    with make(folder, pixel_format="RGB8") as source:
        frames = [source.fetch(1.0) for _ in range(3)]
        assert frames[0].data.shape == (48, 64, 3)
        assert tuple(frames[0].data[0, 0]) == (10, 10, 10)
        assert tuple(frames[1].data[0, 0]) == (200, 0, 0)  # RGB order
        assert tuple(frames[2].data[0, 0]) == (0, 0, 90)
        for f in frames:
            f.release()
        assert source.pool.free == source.pool.size


def test_no_loop_stops_after_last_file(folder: Path) -> None:
    with make(folder, loop=False) as source:
        for _ in range(3):
            source.fetch(1.0).release()
        with pytest.raises(FetchTimeout):
            source.fetch(0.05)


def test_pattern_selects_files(folder: Path) -> None:
    source = make(folder, pattern="a1*.png")
    assert [p.name for p in source.files] == ["a1.png"]


def test_missing_folder(tmp_path: Path) -> None:
    # refused by the options' validation, so ``linecheck validate`` says it before a start
    with pytest.raises(ValidationError, match="does not exist"):
        make(tmp_path / "nope")


def test_not_a_folder(folder: Path) -> None:
    with pytest.raises(ValidationError, match="not a folder"):
        make(folder / "a0.png")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(CameraFatalError, match=r"no files matching '\*\.png'"):
        make(tmp_path)


def test_unreadable_image_is_named(folder: Path) -> None:
    (folder / "a0.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(CameraFatalError, match="a0.png"):
        make(folder)
    (folder / "a0.png").unlink()
    (folder / "a3.png").write_bytes(b"not a png")  # found only when its turn comes
    with make(folder) as source:
        source.fetch(1.0).release()
        source.fetch(1.0).release()
        with pytest.raises(CameraFatalError, match="a3.png"):
            source.fetch(1.0)
        assert source.pool.free == source.pool.size  # the buffer went back despite the error


def test_size_mismatch_is_named(folder: Path) -> None:
    cv2.imwrite(str(folder / "a9.png"), np.zeros((10, 10), np.uint8))
    with make(folder) as source:
        for _ in range(3):
            source.fetch(1.0).release()
        with pytest.raises(CameraFatalError, match="a9.png"):
            source.fetch(1.0)


def test_settings_checked_against_the_images(folder: Path) -> None:
    with pytest.raises(CameraFatalError, match="Width=1280"):
        ReplaySource("rp", ReplaySource.Options(folder=folder), CameraSettings(width=1280, height=48))
    ReplaySource("rp", ReplaySource.Options(folder=folder), CameraSettings(width=64, height=48, pixel_format="RGB8"))


def test_options_forbid_unknown_fields(folder: Path) -> None:
    with pytest.raises(ValidationError):
        ReplaySource.Options.model_validate({"folder": folder, "fps": 3})
