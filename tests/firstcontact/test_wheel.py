"""The wheel runs outside the checkout: built from the source tree, installed into a clean
virtualenv (the package's own dependencies only), and run from a folder that is not the
checkout, with nothing of the checkout on the import path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.firstcontact.clean_install import (
    INSTALL_TIMEOUT_S,
    copy_worktree,
    demo_summary,
    make_venv,
    run,
    with_free_ports,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_S + 600)]


def test_wheel_in_a_clean_venv_runs_the_demo_from_any_folder(tmp_path: Path) -> None:
    source = copy_worktree(tmp_path / "src")
    bin_dir = make_venv(tmp_path / "venv")
    run([str(bin_dir / "pip"), "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)], cwd=tmp_path,
        timeout=INSTALL_TIMEOUT_S)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("linecheck-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for shipped in ("configs/demo.yaml", "recipes/demo-parts.yaml", "recipes/demo/demo-parts.onnx"):
            info = archive.getinfo(f"line/demo_station/{shipped}")
            assert info.file_size > 100, shipped  # the linked file's contents, not a link
        assert {"line/hmi/static/swagger-ui/swagger-ui-bundle.js", "line/hmi/static/swagger-ui/swagger-ui.css"} <= names
        assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    run([str(bin_dir / "pip"), "install", "-q", str(wheel)], cwd=tmp_path, timeout=INSTALL_TIMEOUT_S)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shipped = Path(run([str(bin_dir / "python"), "-c", "from line import demo_station; print(demo_station.config_path())"],
                       cwd=elsewhere).stdout.strip())  # fmt: skip
    assert shipped.is_relative_to(tmp_path / "venv"), shipped  # read from the install, not the checkout
    checked = run([str(bin_dir / "linecheck"), "validate", str(shipped)], cwd=elsewhere)
    assert checked.stdout.strip().startswith(f"{shipped}: ok")

    run([str(bin_dir / "linecheck"), "init", "station"], cwd=elsewhere)
    config = with_free_ports(elsewhere / "station" / "configs" / "demo.yaml", elsewhere / "station" / "configs" / "test.yaml")
    demo = run([str(bin_dir / "linecheck"), "demo", "-c", str(config), "--duration", "8", "--json", "--port", "0"],
               cwd=elsewhere)  # fmt: skip
    summary = demo_summary(demo.stdout)
    assert summary["active_recipe"] == "demo-parts"
    assert (elsewhere / "station" / "var" / "demo" / "results.db").is_file()
    assert not list((tmp_path / "venv").rglob("results.db"))  # nothing written into the install
