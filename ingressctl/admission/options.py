"""ValidateOptions from the controller's own options, so the webhook judges with the same rules.

The webhook, `ingressctl validate` and `ingressctl controller --webhook-port` must build a
candidate exactly as the controller would: same class filter, same ConfigMap settings
(snippet policy included), same default backend and template overrides.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from ..controller import ControllerOptions, settings_from
from ..ingress.build import BuildOptions
from ..store import Snapshot
from .validate import ValidateOptions


def validate_options(copts: ControllerOptions, snap: Snapshot, now: datetime | None = None) -> ValidateOptions:
    """The options `Validator` needs for `snap`; `now` defaults to the wall clock (certificate expiry)."""
    settings, _ = settings_from(snap, copts.configmap)
    when = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    build = BuildOptions(classes=copts.classes, settings=settings, default_backend=copts.default_backend, now=when,
                         default_certificate=copts.default_certificate, ssl_passthrough=copts.ssl_passthrough)
    gateway = dataclasses.replace(copts.gateway, now=when)  # the balancer is assumed, as for affinity
    return ValidateOptions(build=build, template_dir=str(copts.template_dir) if copts.template_dir else None,
                           gateway=gateway)
