"""The base of every configuration model in ``line`` (station config, recipes, MES server).

Frozen (a config object is shared across threads and never changes under them), closed
(``extra="forbid"``: a misspelt key is an error naming it, not a silent default), and finite
(``.inf`` / ``.nan`` parse as YAML floats, but no budget, area, threshold or timeout works with
them: an infinite budget once stopped the deadline watchdog for good).

``camera``, ``inference`` and ``plc`` each keep one base of their own with the same settings:
they never import each other or ``line`` (the layers contract in pyproject.toml);
tests/architecture/test_shared_copies.py keeps the four in step.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
