"""Admission verdicts on canaries: a canary shares host+path with its main Ingress, never a conflict."""

from __future__ import annotations

import pytest

from .admission_fixtures import PREFIX, ingress, snapshot, validator

CANARY = {PREFIX + "canary": "true", PREFIX + "canary-weight": "10"}


@pytest.mark.parametrize(("existing", "candidate", "allowed"), [
    # the canary of an existing main Ingress
    ([ingress("main")], ingress("can", annotations=CANARY, created="2024-02-01T00:00:00Z"), True),
    # the main Ingress applied after its canary
    ([ingress("can", annotations=CANARY)], ingress("main", created="2024-02-01T00:00:00Z"), True),
    # a second plain Ingress on the same host+path is still a conflict, canary or not around
    ([ingress("main"), ingress("can", annotations=CANARY)], ingress("dup", created="2024-02-01T00:00:00Z"), False),
    # a second canary for the same host+path is a conflict too
    ([ingress("main"), ingress("can", annotations=CANARY)],
     ingress("can2", annotations=CANARY, created="2024-02-01T00:00:00Z"), False),
])
def test_canary_is_not_a_path_conflict(existing, candidate, allowed):
    verdict = validator().check(snapshot(*existing), candidate)
    assert verdict.allowed == allowed, verdict
    if not allowed:
        assert any("already defined" in r or "canary" in r for r in verdict.reasons), verdict
