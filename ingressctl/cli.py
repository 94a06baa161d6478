"""Command line entry point: `ingressctl <command> ...`.

Each command lives in its own module under `ingressctl/commands/` and exposes
`register(subparsers)`, which adds its parser and sets `func` to a function taking the
parsed arguments and returning an exit code. This file only wires them together, so adding
a command never touches another command's code.

Design choice: every failure a user can cause ends in one line on stderr naming the
reason and a non-zero exit code; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .logs import FORMATS, configure

# Order is the order of `ingressctl --help`.
COMMAND_MODULES = (
    "ingressctl.commands.local",  # run, render, validate
    "ingressctl.commands.controller",  # controller (cluster mode)
    "ingressctl.commands.proxy",  # proxy (Service proxy)
    "ingressctl.commands.webhook",  # webhook (admission, alone)
    "ingressctl.commands.certgen",  # certgen create|patch (webhook certificates)
    "ingressctl.commands.explain",  # explain URL (why a request goes there)
    "ingressctl.commands.migrate",  # migrate check (leaving ingress-nginx)
    "ingressctl.commands.diff",  # diff (what applying manifests would change)
)


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1 (or .code)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingressctl",
        description="A small, readable Ingress controller that drives a real nginx.",
        epilog="Start with: ingressctl run --manifests examples/quickstart  (see README.md)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-vv for debug); also accepted after the command")
    parser.add_argument("--version", action="version", version=f"ingressctl {_version()}")
    parser.add_argument("--log-format", choices=FORMATS, default="text",
                        help="controller logs as text lines (default) or one JSON object per line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ingressctl")
    except PackageNotFoundError:
        return "(not installed)"


def _verbosity(argv: Sequence[str]) -> tuple[int, list[str]]:
    """-v / -vv / --verbose anywhere before `--`, counted and taken out, and --log-format moved
    before the command: users put global flags after the command as often as before it."""
    count, front, rest = 0, [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest += argv[i:]
            break
        if a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}):
            count += 1 if a == "--verbose" else len(a) - 1
        elif a == "--log-format" and i + 1 < len(argv):
            front += argv[i:i + 2]
            i += 1
        elif a.startswith("--log-format="):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return count, front + rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    verbose, rest = _verbosity(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(rest)
    args.verbose += verbose
    configure(logging.WARNING - 10 * min(args.verbose + 1, 2), args.log_format)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"ingressctl {args.command}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m ingressctl.cli` runs this file as __main__; go through the package module so
    # commands raising ingressctl.cli.UserError are caught by the same class.
    from ingressctl.cli import main as _main

    sys.exit(_main())
