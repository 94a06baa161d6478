"""Golden files: every folder tests/cases/<case>/ holds input.yaml and expected.conf.

The input goes through the manifest-directory source, the build and the built-in
templates with a fixed render context; the output must equal expected.conf byte for byte
and pass the real `nginx -t`. Run `pytest tests/test_golden.py --update-golden` to rewrite
the expected files after an intended change, then review the diff.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.ingress.classes import ClassFilter
from ingressctl.nginx.defaultcert import ensure_default_certificate
from ingressctl.nginx.process import write_files
from ingressctl.sources.files import ManifestDirectory
from ingressctl.store import Store

from .factory import NOW

CASES = Path(__file__).parent / "cases"
PREFIX = "/var/lib/ingressctl-golden"  # fixed so expected files do not depend on tmp paths


def render_case(case: Path, state_dir: Path) -> str:
    store = Store()
    problems = ManifestDirectory(case, store).load()
    assert not [p for p in problems if "input.yaml" in p.path and "not read" not in p.message], problems
    opts = ControllerOptions(state_dir=state_dir, http_port=80, https_port=443, listen=("",),
                             classes=ClassFilter(watch_without_class=True), configmap="ingressctl/config",
                             resolver=("127.0.0.53",),
                             # a case folder with a `dynamic-endpoints` file renders for the Lua balancer
                             dynamic_endpoints=(case / "dynamic-endpoints").exists())
    ctl = Controller(store, opts, clock=lambda: NOW)
    rendered = ctl.render_snapshot(store.snapshot())
    write_files(state_dir / "nginx" / "certs", rendered.files)
    return rendered.text


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        pytest.fail("nginx is not installed: run scripts/setup.sh", pytrace=False)
    return found


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if (p / "input.yaml").exists()))
def test_golden(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    folder = CASES / case
    state = tmp_path / "state"
    text = render_case(folder, state)
    golden_text = text.replace(str((state / "nginx").resolve()), PREFIX)
    # The config id hashes the real (temporary) paths, so it differs per run: mask it.
    config_id = text.split("config-id ", 1)[1].split("\n", 1)[0]
    golden_text = golden_text.replace(config_id, "CONFIG-ID")
    expected = folder / "expected.conf"
    if request.config.getoption("--update-golden"):
        expected.write_text(golden_text)
    assert expected.exists(), f"{expected} missing: run with --update-golden"
    assert golden_text == expected.read_text(), f"{case}: output differs from expected.conf (see --update-golden)"
    # and nginx accepts it
    prefix = state / "nginx"
    for d in ("tmp", "logs"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    ensure_default_certificate(prefix / "certs" / "default.pem")
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    r = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(prefix), "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"nginx -t refused {case}:\n{r.stderr}"
