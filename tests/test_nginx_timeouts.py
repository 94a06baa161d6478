"""Start and reload deadlines follow how long nginx takes to load the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingressctl.nginx.process import Nginx, load_timeout


@pytest.mark.parametrize("least, load, expected", [
    (15.0, 0.0, 15.0),  # small configurations: the configured least time
    (15.0, 2.0, 15.0),
    (15.0, 4.5, 23.0),  # 10,000 Ingresses: nginx -t took 4.5 s
    (15.0, 30.0, 125.0),  # 30,000: 30 s to load; a fixed 15 s never saw it live
])
def test_load_timeout(least: float, load: float, expected: float) -> None:
    assert load_timeout(least, load) == expected


def test_the_measured_nginx_t_sets_the_reload_deadline(tmp_path: Path) -> None:
    fake = tmp_path / "nginx"
    fake.write_text("#!/bin/sh\nsleep 1.2\nexit 0\n")  # an nginx that takes 1.2 s to load its configuration
    fake.chmod(0o755)
    nginx = Nginx(tmp_path / "prefix", binary=str(fake), reload_timeout=2.0)
    assert nginx.wait_seconds == 5.0  # nothing measured yet: 4 x 0 + 5
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\n")
    assert nginx.test(conf) == (True, "")
    assert nginx.load_seconds >= 1.2  # at least the fake's sleep
    assert nginx.wait_seconds == pytest.approx(4 * nginx.load_seconds + 5)
