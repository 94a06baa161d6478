"""The README's migration walk-through runs as written: each `ingressctl` line of its code
block, with the exit code its comment names (0 when none), from the repository root."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from ingressctl.cli import main

ROOT = Path(__file__).resolve().parents[1]


def walkthrough() -> list[tuple[list[str], int]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("On the quickstart and the example export"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    out = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        if not command.startswith("ingressctl "):
            continue
        m = re.search(r"exit (\d)", comment)
        out.append((shlex.split(command)[1:], int(m.group(1)) if m else 0))
    return out


def test_the_walkthrough_is_found() -> None:
    assert len(walkthrough()) >= 5


# the last line needs a running `ingressctl run` (tests/test_diff.py covers it with a live nginx.conf)
@pytest.mark.parametrize("argv,code", [w for w in walkthrough() if w[0][:1] != ["diff"] or len(w[0]) > 3])
def test_walkthrough_line(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(argv) == code, capsys.readouterr()
    finally:
        os.chdir(cwd)
