"""What the Dockerfile installs works on its own: exactly the files its COPY lines take (and
.dockerignore lets through) build a wheel, and that wheel, installed alone, runs every command
the manifests use and renders a configuration from its own templates. No image is built
(no container runtime here); this is the part of the build that can go wrong in this repo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy_kit import ROOT


def copied_paths() -> list[str]:
    """Sources of the Dockerfile's COPY lines (the last word is the destination)."""
    out = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        m = re.match(r"^COPY\s+(.+)$", line)
        if m:
            out += m.group(1).split()[:-1]
    return out


def test_the_copied_files_make_a_package_that_runs_alone(tmp_path: Path) -> None:
    sources = copied_paths()
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert set(sources) <= allowed, f".dockerignore keeps out {set(sources) - allowed}"
    src = tmp_path / "src"
    src.mkdir()
    for name in sources:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("ingressctl-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
    outside = tmp_path / "elsewhere"  # not the repository: nothing may come from the source tree
    outside.mkdir()

    def ingressctl(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "ingressctl.cli", *args], cwd=outside, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, f"ingressctl {' '.join(args)}: {r.stderr}"
        return r.stdout

    where = ingressctl("--help") and subprocess.run(
        [sys.executable, "-c", "import ingressctl; print(ingressctl.__file__)"], cwd=outside, env=env,
        capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target)), where
    for command in (["controller"], ["proxy"], ["certgen", "create"], ["certgen", "patch"], ["webhook"]):
        assert "usage: ingressctl" in ingressctl(*command, "--help")
    conf = ingressctl("render", "--manifests", str(ROOT / "examples" / "quickstart"),
                      "--state-dir", str(tmp_path / "state"))
    assert "server_name" in conf and "upstream" in conf
