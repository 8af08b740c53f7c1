"""Config mistakes: each one names its key path; a stack's mistakes are reported together."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Problem(NamedTuple):
    """One mistake: the key path (``models[1].resources.gpus``) and what is wrong with its value."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path} {self.message}"


class ConfigError(ValueError):
    """Every mistake of a stack config, one line each; each line starts with its key path.

    ``path`` is the first mistake's key path; ``problems`` holds them all, in reading order.
    """

    def __init__(self, path: str, message: str, *, more: Iterable[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = (Problem(path, message), *more)
        super().__init__("\n".join(map(str, self.problems)))
        self.path = path

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> ConfigError:
        first, *rest = problems
        return cls(first.path, first.message, more=rest)

    def report(self, prefix: str = "") -> str:
        """One line for one mistake; else a count, then one indented line per mistake."""
        if len(self.problems) == 1:
            return f"{prefix}{self.problems[0]}"
        lines = "".join(f"\n  {prefix}{p}" for p in self.problems)
        return f"{len(self.problems)} mistakes:{lines}"


class Problems:
    """Collects the mistakes found while reading; :meth:`check` raises them all as one ConfigError."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.found.append(Problem(path, message))

    def __len__(self) -> int:
        return len(self.found)

    def check(self) -> None:
        if self.found:
            raise ConfigError.of(self.found)
