"""Config errors that name the key, the value, the rule broken and the fix."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    key: str
    value: object
    rule: str
    fix: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: {self.rule}. Fix: {self.fix}"


class ConfigError(ValueError):
    """One or more config problems, all reported at once, before anything is launched."""

    def __init__(self, problems: list[Problem], source: str = "config"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {source} ({len(self.problems)} problem(s)):\n{lines}")

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.problems]
