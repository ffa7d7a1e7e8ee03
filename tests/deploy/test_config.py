"""The example station config that install.sh puts in /etc/linecheck parses into the frozen
StationConfig, and its paths fit the unit's sandbox (writable only under /var/lib/linecheck)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from line.app.config import StationConfig

from .conftest import DEPLOY

EXAMPLE = DEPLOY / "config" / "station.example.yaml"
STATE = Path("/var/lib/linecheck")
PLACEHOLDER = "scrypt$16384$8$1$REPLACE$REPLACE"


def _edited_example() -> dict:
    """The example as an installer edits it: a real hash where the placeholder is."""
    from line.mes.config import hash_password

    data = yaml.safe_load(EXAMPLE.read_text())
    assert data["opcua_server"]["users"]["mes"]["password_hash"] == PLACEHOLDER
    data["opcua_server"]["users"]["mes"]["password_hash"] = hash_password("a site password", n=2**4)
    return data


def test_example_config_validates_once_edited() -> None:
    config = StationConfig.model_validate(_edited_example())
    assert config.engine.backend == "tensorrt"
    # everything the service writes lies inside ReadWritePaths=/var/lib/linecheck
    assert config.engine.engine_cache_dir.is_relative_to(STATE)
    assert config.storage.dir.is_relative_to(STATE)
    assert config.recipes.dir.is_relative_to(Path("/etc/linecheck"))
    # Modbus has no authentication: never listen on every interface
    server = config.plc.modbus_server
    assert server is not None and server.host not in ("0.0.0.0", "::", "")
    assert server.port == 502


def test_example_opcua_section_is_production_grade() -> None:
    opcua_config = pytest.importorskip("line.mes.config")
    from pydantic import ValidationError

    raw = yaml.safe_load(EXAMPLE.read_text())["opcua_server"]
    # the placeholder is refused, so an unedited example can never start the station
    with pytest.raises(ValidationError, match="placeholder"):
        opcua_config.OpcUaServerConfig.model_validate(raw)
    server = opcua_config.OpcUaServerConfig.model_validate(_edited_example()["opcua_server"])
    assert server.profile == "production" and not server.allow_anonymous
    assert server.security_policies == ("Basic256Sha256_SignAndEncrypt",)
    assert server.state_dir.is_relative_to(STATE)


def test_example_camera_options_fit_the_backend() -> None:
    genicam = pytest.importorskip("camera.genicam")
    camera = yaml.safe_load(EXAMPLE.read_text())["cameras"][0]
    assert camera["kind"] == "genicam"
    genicam.GenicamOptions.model_validate(camera["options"])
