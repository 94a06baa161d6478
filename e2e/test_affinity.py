"""e2e: sticky sessions (affinity: cookie, issue 14 §2) in the Lua balancer, with real nginx.

100 sessions per mode stay on their endpoint across 20 endpoint changes (scale-ups and
scale-downs pushed without a reload): in `persistent` mode exactly the sessions whose
endpoint left move; in `balanced` mode those move too, and a session whose endpoint stayed
moves only onto an endpoint that just joined (consistent hashing). The cookie's attributes
are exactly as configured, and a canary in front of a sticky Ingress still routes.
"""

from __future__ import annotations

import email.utils
import random
import re
import time

import pytest

from .annotation_kit import ingress
from .harness import INGRESS_CLASS, Backends, LocalController, manifests_for_backends

SESSIONS = 100
CHANGES = 20
POOL = 8  # endpoints that come and go


def _sticky(name: str, host: str, service: str, annotations: dict[str, str], created: str = "2026-01-01T00:00:00Z",
            path: str = "/") -> str:
    return ingress(name, host, [(path, "Prefix", service)], {"affinity": "cookie", **annotations}, created=created)


def _cookie(set_cookie: str) -> tuple[str, str]:
    name, _, rest = set_cookie.partition("=")
    return name, rest.split(";", 1)[0]


class Sessions:
    """Sessions of one host: the cookie each holds and the endpoint serving it last."""

    def __init__(self, ctl: LocalController, host: str) -> None:
        self.ctl, self.host = ctl, host
        self.cookie: list[str] = []
        self.backend: list[str] = []
        for _ in range(SESSIONS):
            r = ctl.get(host)
            assert r.status == 200 and "set-cookie" in r.headers, r
            self.cookie.append(_cookie(r.headers["set-cookie"])[1])
            self.backend.append(r.backend)

    def replay(self) -> list[str]:
        """Each session's next request; a moved session takes the new cookie it is given."""
        now = []
        for i, value in enumerate(self.cookie):
            r = self.ctl.get(self.host, headers={"Cookie": f"other=1; INGRESSCOOKIE={value}; last=2"})
            assert r.status == 200, r
            if "set-cookie" in r.headers:
                self.cookie[i] = _cookie(r.headers["set-cookie"])[1]
            now.append(r.backend)
        return now


@pytest.fixture(scope="module")
def pool() -> Backends:
    b = Backends()
    yield b
    b.stop()


def test_sessions_stick_across_endpoint_changes(tmp_path, pool: Backends) -> None:
    ports = {f"e{i}": pool.start(f"e{i}") for i in range(POOL)}
    beta = pool.start("beta")
    live = [f"e{i}" for i in range(5)]
    ctl = LocalController(tmp_path)
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("svc.yaml", manifests_for_backends("default", "pool", [ports[n] for n in live]))
    ctl.write("beta.yaml", manifests_for_backends("default", "beta", [beta]))
    ctl.write("balanced.yaml", _sticky("balanced", "balanced.test", "pool", {}))
    ctl.write("persistent.yaml", _sticky("persistent", "persistent.test", "pool", {"affinity-mode": "persistent"}))
    ctl.write("canary.yaml", ingress("canary", "balanced.test", [("/", "Prefix", "beta")],
                                     {"canary": "true", "canary-by-header": "X-Canary"},
                                     created="2026-01-02T00:00:00Z"))
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("persistent.test").status == 200, timeout=10, what="sticky hosts served")
        balanced, persistent = Sessions(ctl, "balanced.test"), Sessions(ctl, "persistent.test")
        assert len(set(balanced.backend)) == 5 and len(set(persistent.backend)) == 5  # spread over all
        assert balanced.replay() == balanced.backend and persistent.replay() == persistent.backend
        reloads = ctl.reloads()
        rng = random.Random(14)
        moved_balanced = moved_persistent = 0
        for _ in range(CHANGES):
            before = set(live)
            if len(live) > 2 and (len(live) == POOL or rng.random() < 0.5):
                for gone in rng.sample(live, rng.randint(1, len(live) - 2)):
                    live.remove(gone)
            else:
                live += rng.sample(sorted(set(ports) - set(live)), rng.randint(1, POOL - len(live)))
            joined = set(live) - before
            pushed = ctl.metric("ingressctl_endpoint_updates_total")
            ctl.write("svc.yaml", manifests_for_backends("default", "pool", [ports[n] for n in sorted(live)]))
            ctl.wait_for(lambda p=pushed: ctl.metric("ingressctl_endpoint_updates_total") > p, timeout=10,
                         what="endpoint change pushed")
            now = persistent.replay()
            for old, new in zip(persistent.backend, now, strict=True):
                assert new in live and (new == old) == (old in live), (old, new, live)
            moved_persistent += sum(old != new for old, new in zip(persistent.backend, now, strict=True))
            persistent.backend = now
            now = balanced.replay()
            for old, new in zip(balanced.backend, now, strict=True):
                assert new in live, (old, new, live)
                assert new == old or old not in live or new in joined, (old, new, joined)
            moved_balanced += sum(old != new for old, new in zip(balanced.backend, now, strict=True))
            balanced.backend = now
        assert moved_persistent > 0 and moved_balanced > 0  # the changes did take endpoints away
        assert ctl.reloads() == reloads, "endpoint changes must not reload nginx"
        # the canary still routes: by header to beta, and without it the session's endpoint answers
        assert ctl.get("balanced.test", headers={"X-Canary": "always"}).backend == "beta"
        assert balanced.replay() == balanced.backend
    finally:
        ctl.stop()


def test_cookie_attributes_are_exactly_as_configured(tmp_path, pool: Backends) -> None:
    port = pool.start("attrs")
    ctl = LocalController(tmp_path)
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("svc.yaml", manifests_for_backends("default", "attrs", [port]))
    ctl.write("all.yaml", _sticky("all", "all.test", "attrs", {
        "session-cookie-name": "route", "session-cookie-path": "/app", "session-cookie-domain": ".all.test",
        "session-cookie-expires": "3600", "session-cookie-max-age": "7200", "session-cookie-samesite": "None",
        "session-cookie-conditional-samesite-none": "true", "session-cookie-secure": "true"}))
    ctl.write("plain.yaml", _sticky("plain", "plain.test", "attrs", {}, path="/shop"))
    ctl.write("lax.yaml", _sticky("lax", "lax.test", "attrs", {"session-cookie-samesite": "Lax",
                                                                 "session-cookie-secure": "false"}))
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("lax.test").status == 200, timeout=10, what="served")
        started = time.time()
        r = ctl.get("all.test", headers={"User-Agent": "Mozilla/5.0 Firefox/120.0"})
        m = re.fullmatch(r"route=([0-9a-f]{32}); Expires=([^;]+); Max-Age=7200; Domain=\.all\.test; Path=/app; "
                         r"Secure; HttpOnly; SameSite=None", r.headers["set-cookie"])
        assert m, r.headers["set-cookie"]
        expires = email.utils.parsedate_to_datetime(m.group(2)).timestamp()
        assert started + 3600 - 5 <= expires <= time.time() + 3600 + 5
        old_chrome = ctl.get("all.test", headers={"User-Agent": "Mozilla/5.0 Chrome/60.0.3112.90 Safari/537.36"})
        assert old_chrome.headers["set-cookie"].endswith("; Secure; HttpOnly"), old_chrome.headers  # no SameSite
        plain = ctl.get("plain.test", "/shop/cart").headers["set-cookie"]
        assert re.fullmatch(r"INGRESSCOOKIE=[0-9a-f]{32}; Path=/shop; HttpOnly", plain), plain
        assert ctl.get("plain.test", "/shop/cart", tls=True).headers["set-cookie"].endswith("; Secure; HttpOnly")
        lax = ctl.get("lax.test", tls=True).headers["set-cookie"]
        assert re.fullmatch(r"INGRESSCOOKIE=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Lax", lax), lax
        value = _cookie(plain)[1]
        again = ctl.get("plain.test", "/shop/x", headers={"Cookie": f"INGRESSCOOKIE={value}"})
        assert "set-cookie" not in again.headers  # a live session is not given a new cookie
    finally:
        ctl.stop()
