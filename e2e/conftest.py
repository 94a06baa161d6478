"""Fixtures for e2e tests: real nginx (required, never skipped), backends, a local controller."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import INGRESS_CLASS, Backends, LocalController


@pytest.fixture(scope="session", autouse=True)
def _require_nginx() -> None:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.fail("nginx is not installed: run scripts/setup.sh (Debian package nginx-extras)", pytrace=False)


@pytest.fixture
def backends() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop()


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[LocalController]:
    """A started `ingressctl run` with the `nginx` IngressClass already in its directory."""
    ctl = LocalController(tmp_path)
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.start()
    yield ctl
    ctl.stop()
