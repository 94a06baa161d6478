"""The house rules that tools can check: ruff, the no-I/O import contract, strict typing of the
pure layers. They run with the tests so a change that breaks them fails CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PURE = ["ingressctl/ingress", "ingressctl/explain", "ingressctl/migrate", "ingressctl/objects", "ingressctl/store.py",
        "ingressctl/proxy/core", "ingressctl/admission/validate.py", "ingressctl/proxy/lb/ipam.py"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    r = _run(str(BIN / "ruff"), "check", "ingressctl", "tests", "e2e", "bench")
    assert r.returncode == 0, r.stdout[-4000:]


def test_pure_layers_import_nothing_that_does_io():
    r = _run(str(BIN / "lint-imports"))
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-4000:]


def test_pure_layers_are_strictly_typed():
    r = _run(str(BIN / "mypy"), *PURE)
    assert r.returncode == 0, r.stdout[-4000:]
