"""docs/annotations.md is generated from the registry and must not be stale."""

from __future__ import annotations

from pathlib import Path

from ingressctl.ingress.annotations import REGISTRY
from ingressctl.ingress.annotations.reference import render_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "annotations.md"


def test_reference_is_up_to_date() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/annotations.md is stale: run python -m ingressctl.ingress.annotations.reference > docs/annotations.md")


def test_reference_lists_every_annotation_with_type_default_and_risk() -> None:
    text = render_reference()
    for a in REGISTRY.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{a.name}` |"))
        assert f"| {a.risk} |" in row and a.type.replace("|", "\\|") in row
