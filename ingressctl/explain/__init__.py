"""`ingressctl explain`: which server, location, route and backend serve one request, and why.

The answer is computed from the same `BuildResult` the controller renders (never from the
rendered text), by replaying nginx's own selection rules over the model: server by Host
(exact name, then the wildcard regexes in order, else the default server), location in
nginx's order (exact, longest prefix, then regexes in configuration order), then the
decisions the location's directives take in nginx's phase order (redirects, access checks,
canary maps). A property test sends the same requests through a real nginx.

Design choice: a location's origin is a `RouteRef` (kind, namespace, name, rule, path), not
an Ingress: a Gateway host's location is explained by replaying its dispatch maps
(`gateway.py`), which names the HTTPRoute or GRPCRoute rule and match nginx takes. A URL
with a Gateway listener's port picks that port's servers.
"""

from .explain import Explanation, explain
from .request import Request, RequestError, parse_request

__all__ = ["Explanation", "Request", "RequestError", "explain", "parse_request"]
