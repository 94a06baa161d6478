"""Deletes stale UDP conntrack entries with the `conntrack` CLI (conntrack-tools).

The sync loop hands `ConntrackCleaner.clean` the `StaleFlow`s `proxy.core.stale` computed after
a successful iptables or nftables sync; each becomes one `conntrack -D ...` (run inside a
network namespace when one is given, as the e2e tests do). `conntrack -D` exits 1 when no
entry matched, which is the common case and not an error. Cleanup is best effort: a failure
is logged and counted, never raised, because the rules are already applied and the entries
would expire on their own.

Design choice: without the binary the proxy still works (only stale UDP flows linger until
they time out), so a missing `conntrack` is one warning, logged once, and the cleaner stays
off instead of failing every sync. The CLI's batch mode (`-R`) ignores filters in -D lines
(conntrack-tools 1.4.7), so deletions run one process per flow.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence

from ..core.stale import StaleFlow

log = logging.getLogger(__name__)

_DELETED = re.compile(r"(\d+) flow entries have been deleted")
TIMEOUT = 10.0


class ConntrackCleaner:
    """Runs `conntrack -D` for each stale flow; counts what it deleted and what failed."""

    def __init__(self, netns: str = "", binary: str = "conntrack") -> None:
        self.netns = netns
        self.binary = binary
        self.enabled = True  # False after the binary was found missing (warned once)
        self.deleted = 0  # entries deleted so far (from conntrack's own count)
        self.errors = 0  # deletions that failed
        self._checked = False

    def available(self) -> bool:
        if not self._checked:
            self._checked = True
            if shutil.which(self.binary) is None:
                self.enabled = False
                log.warning("%s is not installed: stale UDP conntrack entries are not deleted, so a "
                            "UDP client may keep reaching a removed endpoint until its entry times "
                            "out (install conntrack-tools: apt-get install conntrack)", self.binary)
        return self.enabled

    def clean(self, flows: Sequence[StaleFlow]) -> int:
        """Delete the entries of every flow; returns how many entries the kernel deleted."""
        if not flows or not self.available():
            return 0
        total = 0
        for flow in flows:
            total += self._delete(flow)
        self.deleted += total
        return total

    def _delete(self, flow: StaleFlow) -> int:
        argv = (["ip", "netns", "exec", self.netns] if self.netns else []) + [self.binary, *flow.argv()]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.errors += 1
            log.warning("conntrack cleanup of %s failed: %s", flow, e)
            return 0
        found = _DELETED.search(proc.stderr)
        if found is None or proc.returncode not in (0, 1):
            self.errors += 1
            err = " | ".join(proc.stderr.strip().splitlines()[:4])
            log.warning("conntrack cleanup of %s failed (exit %d): %s", flow, proc.returncode, err)
            return 0
        count = int(found.group(1))
        if count:
            log.info("deleted %d stale conntrack entries of %s", count, flow)
        return count
