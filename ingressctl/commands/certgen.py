"""`ingressctl certgen create|patch`: webhook certificates in a Secret, and the caBundle patch.

Run as a Job before the controller starts (create), then after the
ValidatingWebhookConfiguration exists (patch). Both are idempotent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..admission import certs
from ..cli import UserError

API_ERRORS = (ApiException, urllib3.exceptions.HTTPError)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("certgen", help="webhook CA and serving certificate; caBundle patch",
                       description="Create the admission webhook's certificates and trust them.")
    verbs = p.add_subparsers(dest="verb", metavar="create|patch", required=True)
    create = verbs.add_parser(
        "create", help="create the CA and serving certificate Secret (kept while still valid)",
        description="Create a Secret (type kubernetes.io/tls, keys ca.crt, tls.crt, tls.key) holding a fresh "
        "CA (5 years) and a serving certificate (1 year) for <svc>, <svc>.<ns> and <svc>.<ns>.svc. An "
        "existing Secret is left alone while it is valid for those names and not within 30 days of expiry.")
    _common(create)
    create.add_argument("--service", required=True, help="the webhook's Service name")
    create.add_argument("--host", action="append", default=[], metavar="NAME|IP",
                        help="extra subjectAltName, repeatable (e.g. 127.0.0.1 for a local webhook)")
    create.add_argument("--out-dir", type=Path, default=None,
                        help="also write ca.crt, tls.crt, tls.key to this directory")
    create.set_defaults(func=cmd_create)
    patch = verbs.add_parser(
        "patch", help="set caBundle (and failurePolicy) on the ValidatingWebhookConfiguration",
        description="Copy ca.crt from the Secret into clientConfig.caBundle of every webhook of the "
        "ValidatingWebhookConfiguration; writes only when something differs.")
    _common(patch)
    patch.add_argument("--webhook-name", required=True, help="ValidatingWebhookConfiguration name")
    patch.add_argument("--failure-policy", choices=("Fail", "Ignore"), default=None,
                       help="also set failurePolicy on every webhook (but those of --keep-failure-policy)")
    patch.add_argument("--keep-failure-policy", action="append", default=[], metavar="WEBHOOK",
                       help="a webhook (by name) whose failurePolicy is left as it is; repeatable")
    patch.set_defaults(func=cmd_patch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", required=True, help="namespace of the Secret and Service")
    p.add_argument("--secret-name", required=True, help="Secret holding the certificates")
    p.add_argument("--kubeconfig", default=None, help="cluster to talk to (default: in-cluster, $KUBECONFIG)")


def _api(args: argparse.Namespace) -> Any:
    from ..kube.client import KubeClient, KubeUnavailable, load_configuration

    try:
        return KubeClient(load_configuration(args.kubeconfig))
    except KubeUnavailable as e:
        raise UserError(str(e)) from None


def _fail(api: Any, e: BaseException) -> UserError:
    from ..kube.client import describe_failure

    return UserError(describe_failure(api.host, e))


def cmd_create(args: argparse.Namespace) -> int:
    api = _api(args)
    names = certs.service_names(args.service, args.namespace, args.host)
    try:
        action, secret = certs.ensure_secret(api, args.namespace, args.secret_name, names)
    except (OSError, RuntimeError) as e:
        raise UserError(str(e)) from None
    except API_ERRORS as e:
        raise _fail(api, e) from None
    print(f"Secret {args.namespace}/{args.secret_name}: {action}")
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for key, data in certs.secret_data(secret).items():
            mode = 0o600 if key == "tls.key" else 0o644  # the key is never readable by others, not even briefly
            fd = os.open(args.out_dir / key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    api = _api(args)
    try:
        secret = api.request("GET", certs.secret_path(args.namespace, args.secret_name))
        ca = certs.secret_data(secret).get("ca.crt")
        if not ca:
            raise UserError(f"Secret {args.namespace}/{args.secret_name} has no ca.crt; run certgen create first")
        changed = certs.patch_webhook(api, args.webhook_name, ca, args.failure_policy,
                                      keep_policy=args.keep_failure_policy)
    except (UserError, LookupError, RuntimeError) as e:
        raise UserError(str(e).strip("'\"")) from None
    except API_ERRORS as e:
        raise _fail(api, e) from None
    print(f"ValidatingWebhookConfiguration {args.webhook_name}: {'patched' if changed else 'unchanged'}",
          file=sys.stdout)
    return 0
