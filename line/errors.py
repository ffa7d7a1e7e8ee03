"""Validation errors that name the file, the field path and the reason — never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

# pydantic prefixes the message of a ValueError raised in a validator; an operator reads the
# reason, not the exception class it travelled in
_PREFIXES = ("Value error, ", "Assertion failed, ")


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


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("reject", 0, "bin")`` -> ``reject.1.bin``: list items are numbered from 1, as a person
    counts them in the file (``reject.0`` reads as "no rule" to an operator)."""
    parts = [prefix] if prefix else []
    parts += [str(p + 1) if isinstance(p, int) else str(p) for p in loc]
    return ".".join(parts)


def problems_from_validation(file: Path | str, error: ValidationError, prefix: str = "") -> list[Problem]:
    items = error.errors()
    # pydantic drops an invalid list item and then also reports the list as too short: the
    # item's own problem is the one to fix
    inner = {tuple(i["loc"][:n]) for i in items for n in range(len(i["loc"]))}
    out = []
    for item in items:
        if item["type"] == "too_short" and tuple(item["loc"]) in inner:
            continue
        reason = item["msg"]
        for strip in _PREFIXES:
            reason = reason.removeprefix(strip)
        if item["type"] == "extra_forbidden":
            reason = "unknown key"
        out.append(Problem(str(file), field_path(item["loc"], prefix), reason))
    return out
