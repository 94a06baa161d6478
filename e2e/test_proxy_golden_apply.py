"""Every golden rule dump in tests/proxy_cases is accepted by the kernel as written.

The fast golden tests prove the text does not change by accident; this proves the text is
valid: each expected.iptables goes through `iptables-restore --noflush` and each
expected.nft through `nft -f` in a namespace of its own, then the backend's `cleanup()`
must leave nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingressctl.proxy.backends.base import CommandRunner
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.backends.nftables import NftablesBackend

from .netns import Netns, sh

pytestmark = pytest.mark.netns
CASES_DIR = Path(__file__).resolve().parent.parent / "tests" / "proxy_cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input.yaml").is_file())


@pytest.fixture(scope="module")
def ns() -> Iterator[Netns]:
    name = f"icp{os.getpid()}-golden"
    sh("ip", "netns", "add", name)
    try:
        yield Netns(name)
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.mark.parametrize("case", CASES)
def test_iptables_golden_applies(ns: Netns, case: str) -> None:
    text = (CASES_DIR / case / "expected.iptables").read_text()
    ns.exec("iptables-restore", "--noflush", stdin=text)
    saved = ns.exec("iptables-save")
    assert saved.count("-A ICP-") == text.count("-A ICP-")
    IptablesBackend(runner=CommandRunner(ns.name)).cleanup()
    assert "ICP" not in ns.exec("iptables-save")


@pytest.mark.parametrize("case", CASES)
def test_nft_golden_applies(ns: Netns, case: str) -> None:
    ns.exec("nft", "-f", "-", stdin=(CASES_DIR / case / "expected.nft").read_text())
    assert "table ip ingressctl" in ns.exec("nft", "list", "tables")
    NftablesBackend(runner=CommandRunner(ns.name)).cleanup()
    assert "ingressctl" not in ns.exec("nft", "list", "tables")
