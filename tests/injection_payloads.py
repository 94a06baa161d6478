"""Configuration-injection payloads, modelled on the ingress-nginx advisories.

Shared by the admission tests and the annotation tests: every entry is a value that must
never reach nginx. `where` says which field of an Ingress carries it:

- "path"        spec.rules[].http.paths[].path with pathType Prefix
- "exact-path"  the same with pathType Exact
- "regex-path"  pathType ImplementationSpecific with use-regex: "true"
- "host"        spec.rules[].host
- "tls-host"    spec.tls[].hosts[]
- "secret"      spec.tls[].secretName
- "service"     backend service name
- "annotation"  nginx.ingress.kubernetes.io/<annotation>

The payloads are written for this project (not copied from advisories): each tries one
way out of a value into nginx syntax: a newline, `;`, `{`, `}`, quotes, `#`, `$` and nginx
variables, Lua blocks, directives hidden in paths and hosts, and the file paths the
CVE-2025-1974 chain used (`ssl_engine` / `load_module` on /proc/self/fd, client body files).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Payload:
    id: str
    cve: str
    where: str
    value: str
    annotation: str = ""  # without the nginx.ingress.kubernetes.io/ prefix

    @property
    def full_annotation(self) -> str:
        return f"nginx.ingress.kubernetes.io/{self.annotation}" if self.annotation else ""


SECRETS_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Ways out of a value, reused below for every field and annotation.
BREAKOUTS: dict[str, str] = {
    "newline-directive": "x\nload_module /tmp/evil.so;",
    "semicolon-directive": "x; ssl_engine /proc/self/fd/9;",
    "close-block": "x; } location /leak { alias " + SECRETS_DIR + "/; } location /y {",
    "double-quote": 'x" ; return 200 "owned',
    "single-quote": "x' ; return 200 'owned",
    "comment": "x; #",
    "variable": "${http_x_cmd}",
    "lua": "x; content_by_lua_block { os.execute('id') }",
    "include": "x; include /etc/passwd;",
    "backslash": "x\\; root /etc",
    "carriage-return": "x\r\nroot /etc;",
    "nul": "x\x00; root /etc;",
}


def _annotation_payloads(cve: str, annotation: str, base: str, kinds: tuple[str, ...]) -> list[Payload]:
    return [Payload(f"{annotation}-{k}", cve, "annotation", base + BREAKOUTS[k], annotation) for k in kinds]


ALL_KINDS = tuple(BREAKOUTS)
SHORT_KINDS = ("newline-directive", "semicolon-directive", "close-block", "double-quote", "lua", "variable")

PAYLOADS: list[Payload] = [
    # CVE-2021-25742: snippets read the service-account token (alias, lua).
    Payload("server-snippet-alias", "CVE-2021-25742", "annotation",
            f"location /t {{ alias {SECRETS_DIR}/; }}", "server-snippet"),
    Payload("configuration-snippet-lua", "CVE-2021-25742", "annotation",
            "content_by_lua_block { ngx.say(io.open('" + SECRETS_DIR + "/token'):read('*a')) }",
            "configuration-snippet"),
    # CVE-2023-5043: configuration-snippet command execution.
    Payload("configuration-snippet-exec", "CVE-2023-5043", "annotation",
            "access_by_lua_block { os.execute('id > /tmp/x') }", "configuration-snippet"),
    Payload("stream-snippet", "CVE-2023-5043", "annotation", "server { listen 1; }", "stream-snippet"),
    Payload("auth-snippet", "CVE-2023-5043", "annotation", "root /etc;", "auth-snippet"),
    # CVE-2021-25745 / CVE-2021-25748 / CVE-2022-4886: the path field.
    *[Payload(f"path-{k}", "CVE-2021-25745", "path", "/" + b) for k, b in BREAKOUTS.items()],
    *[Payload(f"exact-path-{k}", "CVE-2021-25748", "exact-path", "/" + b) for k, b in BREAKOUTS.items()],
    *[Payload(f"regex-path-{k}", "CVE-2022-4886", "regex-path", "/" + b) for k, b in BREAKOUTS.items()],
    Payload("path-token-file", "CVE-2021-25745", "exact-path", "/x{alias " + SECRETS_DIR + "/token;}"),
    Payload("regex-path-catastrophic", "CVE-2022-4886", "regex-path", "/(" + "a" * 300 + ")"),
    Payload("regex-path-not-compiling", "CVE-2022-4886", "regex-path", "/(unclosed"),
    Payload("regex-path-dollar-var", "CVE-2022-4886", "regex-path", "/$host"),
    # Hosts, TLS hosts, names (CVE-2021-25746: directive injection through object fields).
    *[Payload(f"host-{k}", "CVE-2021-25746", "host", "a.example.com" + b) for k, b in BREAKOUTS.items()],
    *[Payload(f"tls-host-{k}", "CVE-2021-25746", "tls-host", "a.example.com" + b) for k in SHORT_KINDS
      for b in [BREAKOUTS[k]]],
    Payload("host-uppercase-variable", "CVE-2021-25746", "host", "$HOST.example.com"),
    Payload("secret-newline", "CVE-2021-25746", "secret", "tls\nssl_engine /proc/self/fd/3"),
    Payload("service-semicolon", "CVE-2021-25746", "service", "web;root"),
    # CVE-2021-25746: annotations that land in directives.
    *_annotation_payloads("CVE-2021-25746", "proxy-read-timeout", "60", ALL_KINDS),
    *_annotation_payloads("CVE-2021-25746", "proxy-connect-timeout", "5s", SHORT_KINDS),
    *_annotation_payloads("CVE-2021-25746", "proxy-body-size", "1m", ALL_KINDS),
    *_annotation_payloads("CVE-2021-25746", "backend-protocol", "HTTP", SHORT_KINDS),
    *_annotation_payloads("CVE-2021-25746", "use-regex", "true", SHORT_KINDS),
    *_annotation_payloads("CVE-2021-25746", "ssl-redirect", "true", SHORT_KINDS),
    *_annotation_payloads("CVE-2021-25746", "rewrite-target", "/", ALL_KINDS),
    *_annotation_payloads("CVE-2021-25746", "whitelist-source-range", "10.0.0.0/8", SHORT_KINDS),
    *_annotation_payloads("CVE-2021-25746", "upstream-vhost", "a.example.com", SHORT_KINDS),
    *_annotation_payloads("CVE-2021-25746", "cors-allow-origin", "https://a.example.com", SHORT_KINDS),
    # CVE-2023-5044: permanent-redirect.
    *_annotation_payloads("CVE-2023-5044", "permanent-redirect", "https://a.example.com/", ALL_KINDS),
    *_annotation_payloads("CVE-2023-5044", "temporal-redirect", "https://a.example.com/", SHORT_KINDS),
    # CVE-2025-24514: auth-url.
    *_annotation_payloads("CVE-2025-24514", "auth-url", "http://auth.example.com/check", ALL_KINDS),
    *_annotation_payloads("CVE-2025-24514", "auth-signin", "https://auth.example.com/start", SHORT_KINDS),
    # auth-url / auth-signin accept $host, $scheme, $server_port, $request_uri and
    # $escaped_request_uri: a breakout after an allowed variable, and any other variable.
    *[Payload(f"{a}-vars-{k}", "CVE-2025-24514", "annotation", base + BREAKOUTS[k], a) for k in ALL_KINDS
      for a, base in (("auth-url", "https://$host/oauth2/auth"),
                      ("auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri"))],
    *[Payload(f"{a}-var-{name}", "CVE-2025-24514", "annotation", value, a) for a, name, value in (
        ("auth-url", "client-header", "https://$http_x_auth_target/check"),
        ("auth-url", "longer-name", "https://$hostname/check"),
        ("auth-url", "prefix-of-allowed", "https://$host_evil/check"),
        ("auth-url", "braced", "https://${host}/check"),
        ("auth-url", "arg", "https://$host/check?to=$arg_to"),
        ("auth-url", "uppercase", "https://$HOST/check"),
        ("auth-url", "bare-dollar", "https://$host/check$"),
        ("auth-signin", "cookie", "https://$host/start?rd=$cookie_session"),
        ("auth-signin", "remote-user", "https://$host/start?rd=$remote_user"),
        ("auth-signin", "request-body", "https://$host/start?rd=$request_body"),
        ("auth-signin", "scheme-in-host", "https://$scheme;/start"),
        ("auth-signin", "newline-after-var", "https://$host\nreturn 200 x;"),
    )],
    # CVE-2025-1097: auth-tls-match-cn.
    *_annotation_payloads("CVE-2025-1097", "auth-tls-match-cn", "CN=client", ALL_KINDS),
    # CVE-2025-1098: mirror-target and mirror-host.
    *_annotation_payloads("CVE-2025-1098", "mirror-target", "http://mirror.example.com", ALL_KINDS),
    *_annotation_payloads("CVE-2025-1098", "mirror-host", "mirror.example.com", SHORT_KINDS),
    # CVE-2025-1974: the chain ends in ssl_engine / load_module on a file the attacker wrote.
    Payload("auth-tls-ssl-engine", "CVE-2025-1974", "annotation",
            'CN=x"}\nssl_engine /proc/self/fd/42;\n#', "auth-tls-match-cn"),
    Payload("auth-url-load-module", "CVE-2025-1974", "annotation",
            "http://x/#;\nload_module /proc/1/fd/3;", "auth-url"),
    Payload("mirror-client-body", "CVE-2025-1974", "annotation",
            "http://x/;}\nclient_body_temp_path /tmp/;", "mirror-target"),
    Payload("path-ssl-engine", "CVE-2025-1974", "path", "/x;ssl_engine /proc/self/fd/7;"),
]

# Values that are fine for the same fields (guard against a validator that refuses everything).
SAFE_VALUES: dict[str, str] = {
    "path": "/api/v1/users",
    "exact-path": "/healthz",
    "regex-path": "/api/v[0-9]+/.*",
    "host": "shop.example.com",
    "tls-host": "shop.example.com",
    "secret": "shop-tls",
    "service": "web",
}

assert len({p.id for p in PAYLOADS}) == len(PAYLOADS), "payload ids must be unique"
