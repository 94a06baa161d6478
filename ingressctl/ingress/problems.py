"""Where a build reports what it could not serve: one collector every step of the Ingress and
Gateway builds writes to (no step calls back into the builder to report)."""

from __future__ import annotations

from collections.abc import Iterable

from ..objects import Ingress
from .model import Problem


class Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, problem: Problem) -> None:
        self.items.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def about(self, ing: Ingress, reason: str, message: str, warning: bool = False) -> None:
        """A problem of one Ingress (the `Report` the annotation and canary code take)."""
        self.items.append(Problem("Ingress", ing.meta.namespace, ing.meta.name, reason, message, warning))

    def sorted(self) -> tuple[Problem, ...]:
        """Once each, in a stable order (namespace, name, reason, message)."""
        return tuple(sorted(set(self.items), key=lambda p: (p.namespace, p.name, p.reason, p.message)))
