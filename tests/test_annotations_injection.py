"""Every injection pattern (tests/injection_payloads.py) applied to every annotation is refused.

The breakouts are appended to a valid value of each registered annotation, so a validator
that accepted a prefix and ignored the rest would fail here. Snippet annotations are
checked with snippets enabled: even then the payloads must not get through.
"""

from __future__ import annotations

import pytest

from ingressctl.ingress.annotations import PREFIX, REGISTRY, IngressConfig, parse_annotations, security_category

from .injection_payloads import BREAKOUTS, PAYLOADS
from .test_annotations_parse import COMPANIONS, GOOD

BASE = {name: value for name, value, _ in reversed(GOOD)}  # first good value of each annotation
# A snippet is nginx syntax by design: a comment or a variable inside one is not a breakout.
SNIPPET_HARMLESS = {"comment", "variable"}

CASES = [(name, kind) for name in sorted(REGISTRY) for kind in BREAKOUTS
         if not (REGISTRY[name].snippet and kind in SNIPPET_HARMLESS)]


def refused(name: str, value: str) -> bool:
    extra = {PREFIX + k: val for k, val in COMPANIONS.get(name, {}).items()}
    cfg, problems = parse_annotations({**extra, PREFIX + name: value}, allow_snippets=True)
    field = REGISTRY[name].field
    mine = [p for p in problems if p.annotation == PREFIX + name and not p.warning]
    return bool(mine) and getattr(cfg, field) == getattr(IngressConfig(), field)


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_breakout_appended_to_valid_value_is_refused(name: str, kind: str) -> None:
    assert refused(name, BASE[name] + BREAKOUTS[kind])


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_breakout_alone_is_refused(name: str, kind: str) -> None:
    assert refused(name, BREAKOUTS[kind])


ANNOTATION_PAYLOADS = [p for p in PAYLOADS if p.where == "annotation"]


@pytest.mark.parametrize("payload", ANNOTATION_PAYLOADS, ids=[p.id for p in ANNOTATION_PAYLOADS])
def test_advisory_payloads(payload) -> None:  # type: ignore[no-untyped-def]
    if payload.annotation not in REGISTRY:
        cfg, problems = parse_annotations({payload.full_annotation: payload.value}, allow_snippets=True)
        # unsupported: never applied; a warning, or a refusal where ignoring it would weaken security
        harmless = not security_category(payload.annotation)
        assert cfg == IngressConfig() and [p.warning for p in problems] == [harmless]
    else:
        assert refused(payload.annotation, payload.value), payload.value
