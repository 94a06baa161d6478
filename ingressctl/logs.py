"""Controller logging: text (the default) or one JSON object per line (`--log-format json`).

JSON lines carry `time`, `level`, `logger` and `message`, plus the fields a log call passes as
`extra` — `kind`, `namespace`, `name` and `reason` for every problem with an object — so a log
pipeline can filter by Ingress without parsing messages.

Design choice: python-json-logger does the encoding (escaping, exceptions as `exc_info`);
this module only picks the fields and their names.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


def configure(level: int, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "object_name": "name"},
            timestamp=False))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)


def object_fields(kind: str, namespace: str, name: str, reason: str = "") -> dict[str, str]:
    """`extra` for a log call about one Kubernetes object."""
    fields = {"kind": kind, "namespace": namespace, "object_name": name}  # `name` is the logger's (JSON: "name")
    if reason:
        fields["reason"] = reason
    return fields
