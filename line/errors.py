"""Validation errors that name the file, the field path and the reason — never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.reason}" if self.path else f"{self.file}: {self.reason}"


class ConfigError(Exception):
    """One or more problems in a config or recipe file. The only error that parsing lets escape."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def problems_from_validation(file: Path | str, error: ValidationError) -> list[Problem]:
    out = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"])
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown key"
        out.append(Problem(str(file), path, reason))
    return out
