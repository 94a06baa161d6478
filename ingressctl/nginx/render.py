"""Model -> nginx.conf text, through Jinja2 templates.

The environment uses StrictUndefined (a typo in a template is an error, not an empty
string) and exposes one quoting filter, `q`, for every string that came from a user object.
`q` wraps the value in double quotes and refuses anything nginx could read as syntax or as
a variable, so a value that slipped past validation still cannot become a directive.
Three narrower filters exist for values that need one thing `q` refuses: `q_re` (regexes:
`\\` and `$1`..`$9`), `q_log` (log formats) and `q_url` (auth-url / auth-signin: a URL whose
only `$` tokens are the variables of `shapes.URL_VARIABLES`, e.g. `$host`,
`$escaped_request_uri`; any other `$`, a quote, `\\`, whitespace, `;`, `{`, `}`, `#` or
a control character is refused).

A model that uses `$escaped_request_uri` (auth-signin's `rd`) needs lua-nginx-module:
`Renderer.render` adds `RenderContext.lua_modules` to the loaded modules only then.

Design choice: templates are looked up in an optional override directory first, then in the
package; `Renderer.with_sources` pins a known-good set of sources so the process layer can
fall back to the last override that passed `nginx -t`.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from ..ingress.annotations.shapes import URL_VARIABLES
from ..ingress.model import Model, Server
from ..ingress.settings import HEADER_VARIABLES
from .merge import MIN_GROUP, merge_servers

CONFIG_ID_MARK = "@@INGRESSCTL_CONFIG_ID@@"

class RenderError(ValueError):
    """The template or a value could not be rendered safely."""


_UNSAFE = re.compile(r'["\\$\x00-\x1f\x7f]')
_LOG_UNSAFE = re.compile(r"['\\\x00-\x1f\x7f]")


def quote(value: object) -> str:
    """The one quoting filter: a double-quoted nginx string with nothing nginx would interpret."""
    text = str(value)
    bad = _UNSAFE.search(text)
    if bad:
        raise RenderError(f"refusing to render {text[:80]!r}: it contains {bad.group(0)!r}")
    return f'"{text}"'


_RE_UNSAFE = re.compile(r'["\x00-\x1f\x7f]|\\$|\$(?![1-9)|]|$)')


def quote_regex(value: object) -> str:
    """Regexes (location ~, rewrite, if ~) and rewrite targets: double-quoted; `\\` is kept and
    `$` is allowed only as an end anchor or a capture reference $1..$9, never a variable name."""
    text = str(value)
    bad = _RE_UNSAFE.search(text)
    if bad:
        raise RenderError(f"refusing to render regex {text[:80]!r}: it contains {bad.group(0)!r}")
    return f'"{text}"'


def quote_log_format(value: object) -> str:
    """Log formats are the one place '$variables' are wanted: single-quoted, no ' or \\."""
    text = str(value)
    if _LOG_UNSAFE.search(text):
        raise RenderError("refusing to render a log format with single quotes, backslashes or control characters")
    return f"'{text}'"


_URL_VAR_UNSAFE = re.compile(r"[\"'\\\x00-\x20\x7f;{}#]|\$(?!(?:" + "|".join(URL_VARIABLES) + r")(?![A-Za-z0-9_]))")


def _quoted(value: object, unsafe: re.Pattern[str], max_len: int, what: str) -> str:
    """`value` double-quoted, or RenderError when `unsafe` finds something in it or it is too long."""
    text = str(value)
    bad = unsafe.search(text)
    if bad or len(text) > max_len:
        found = repr(bad.group(0)) if bad else "too many characters"
        raise RenderError(f"refusing to render {what} {text[:80]!r}: it contains {found}")
    return f'"{text}"'


def quote_url(value: object) -> str:
    """auth-url / auth-signin: double-quoted; `$` only as one of `URL_VARIABLES` (nginx
    interpolates them at request time), nothing nginx would read as syntax."""
    return _quoted(value, _URL_VAR_UNSAFE, 2048, "URL")


_URI_UNSAFE = re.compile(r"[\"'\\\x00-\x20\x7f;{}#]|\$(?!(?:1|host|request_uri|is_args|args)(?![A-Za-z0-9_]))")


def quote_uri(value: object) -> str:
    """Gateway API Locations and rewritten paths (gateway/model.py UriMap): double-quoted; `$`
    only as $1 (the rest of a replaced prefix), $host, $request_uri, $is_args or $args."""
    return _quoted(value, _URI_UNSAFE, 2048, "URI")


_HV_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]|\$(?!\{?(?:' + "|".join(HEADER_VARIABLES) + r")(?![A-Za-z0-9_]))")


def quote_header_value(value: object) -> str:
    """Header values from the ConfigMap (add-headers, proxy-set-headers): double-quoted; `$`
    only as one of `HEADER_VARIABLES`, which nginx fills in per request."""
    return _quoted(value, _HV_UNSAFE, 1200, "header value")


HEADERS_MORE_MODULE = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
_KEY_UNSAFE = re.compile(r'["\\\s\x00-\x1f\x7f;{}#]')


def quote_cache_key(value: object) -> str:
    """auth-cache-key (validated by annotations.shapes.cache_key): double-quoted, its variables kept."""
    return _quoted(value, _KEY_UNSAFE, 700, "cache key")


LUA_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")


def needs_lua(model: Model) -> bool:
    """True when a location computes a variable with Lua ($escaped_request_uri) or sets an
    affinity cookie."""
    return any((loc.auth_location and loc.config.needs_escaped_request_uri) or loc.affinity
               for server in model.servers for loc in server.locations)


@dataclass(frozen=True)
class RenderContext:
    """Everything the templates need that does not come from Kubernetes objects."""

    prefix: str  # nginx prefix directory (state dir / nginx)
    http_port: int = 80
    https_port: int = 443
    listen: tuple[str, ...] = ("",)  # "" = all IPv4 addresses, "127.0.0.1:", "[::]:"
    resolver: tuple[str, ...] = ()
    config_id: str = CONFIG_ID_MARK
    access_log: str = "/dev/stdout"
    modules: tuple[str, ...] = ()
    lua_modules: tuple[str, ...] = LUA_MODULES  # added to `modules` when the model needs Lua; () = none
    dynamic: bool = False  # endpoints of round-robin upstreams through the Lua balancer
    lazy_default_certificate: bool = True  # workers load it per handshake (they can read it)
    redirect_https_port: int = 0  # --redirect-https-port: the port HTTPS redirects name (0: none, as on 443)
    request_metrics: bool = False  # per-request metrics in the Lua log phase (templates/ingressctl_metrics.lua)
    metrics_buckets: tuple[str, str, str] = ("", "", "")  # time, length, size bucket bounds for Lua
    ssl_passthrough: bool = False  # the HTTPS port is a stream server choosing by SNI (--enable-ssl-passthrough)
    certificates_by_lua: bool = True  # off: every host names its certificate (the layout before; benchmarks)
    merge_min: int = MIN_GROUP  # hosts with the same server block share one from this many (nginx/merge.py; 0: never)

    @property
    def lua_certificates(self) -> bool:
        """Servers without TLS settings of their own get no SSL context: Lua picks their
        certificate by SNI from the endpoint table (needs the Lua balancer, and workers that
        read the state dir)."""
        return self.dynamic and self.lazy_default_certificate and self.certificates_by_lua

    @property
    def lua_path(self) -> str:
        return f"{self.prefix}/lua/?.lua;;"

    @property
    def endpoints_file(self) -> str:
        return f"{self.prefix}/endpoints.txt"

    @property
    def https_socket(self) -> str:
        """Where the HTTPS servers listen (PROXY protocol) when the HTTPS port is the passthrough front."""
        return f"{self.prefix}/https.sock"

    @property
    def status_socket(self) -> str:
        return f"{self.prefix}/status.sock"

    @property
    def default_certificate(self) -> str:
        return f"{self.prefix}/certs/default.pem"

    @property
    def redirect_port_suffix(self) -> str:
        """`:N` for --redirect-https-port N (local mode on 8443); "" otherwise, as ingress-nginx."""
        return f":{self.redirect_https_port}" if self.redirect_https_port not in (0, 443) else ""

    def cert_path(self, file_name: str) -> str:
        return f"{self.prefix}/certs/{file_name}"

    def for_model(self, model: Model) -> RenderContext:
        """This context with the modules `model` needs loaded: Lua for $escaped_request_uri,
        headers-more for the ConfigMap's add-headers."""
        ctx = self
        if model.settings.bind_address:  # the ConfigMap's bind-address wins over --listen-address
            listen = tuple(f"[{a}]:" if ":" in a else f"{a}:" for a in model.settings.bind_address)
            ctx = dataclasses.replace(ctx, listen=listen)
        if needs_lua(model) and not any(m.endswith("ngx_http_lua_module.so") for m in self.modules):
            if not self.lua_modules:
                raise RenderError("auth-signin and $escaped_request_uri need nginx's Lua module (nginx-extras), "
                                  "which is not installed")
            ctx = dataclasses.replace(ctx, modules=ctx.modules + self.lua_modules)
        custom = any(loc.response_headers or loc.response_header_sets for server in model.servers
                     for loc in server.locations)
        if (model.settings.add_headers or custom) and HEADERS_MORE_MODULE not in ctx.modules:
            ctx = dataclasses.replace(ctx, modules=ctx.modules + (HEADERS_MORE_MODULE,))
        if (model.streams or ctx.ssl_passthrough) and STREAM_MODULE not in ctx.modules:
            ctx = dataclasses.replace(ctx, modules=ctx.modules + (STREAM_MODULE,))
        return ctx


def _package_sources() -> dict[str, str]:
    pkg = resources.files("ingressctl.templates")
    return {p.name: p.read_text(encoding="utf-8") for p in pkg.iterdir() if p.name.endswith(".j2")}


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["q"] = quote
    env.filters["q_log"] = quote_log_format
    env.filters["q_re"] = quote_regex
    env.filters["q_url"] = quote_url
    env.filters["q_uri"] = quote_uri
    env.filters["q_hv"] = quote_header_value
    env.filters["q_key"] = quote_cache_key
    env.filters["q_inner"] = lambda value: quote(value)[1:-1]  # checked like `q`, inside a quoted string
    return env


class BlockCache:
    """Rendered server blocks by what they are rendered from, so a change re-renders only the
    servers it touched (10,000 Ingresses: most of a render). A block depends on its Server,
    on whether each location's upstream is the shared balancer's, on the default
    certificate, and on the render context and settings: the cache holds blocks for one
    (context, settings) and starts over when they change, or when it holds more than twice
    the model's servers (blocks of servers gone meanwhile). At most `limit` blocks."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.blocks: dict[object, str] = {}
        # the same blocks by the Server object's identity: a build that reuses a server
        # (ingress.build.BuildMemo) hands the same object, and hashing a Server is most of a lookup
        self.by_id: dict[int, tuple[Server, tuple[bool, ...], str]] = {}
        self.scope: object = None
        self.model: Model | None = None

    def begin(self, model: Model, ctx: RenderContext) -> BlockCache:
        scope = (ctx, model.settings, model.default_certificate)
        if scope != self.scope or len(self.blocks) > min(self.limit, 2 * len(model.servers) + 1000):
            self.blocks, self.by_id, self.scope = {}, {}, scope
        self.model = model
        return self

    def _flags(self, server: Server) -> tuple[bool, ...]:
        assert self.model is not None
        balanced = self.model.balanced_directly
        return tuple(loc.upstream in balanced for loc in server.locations)

    def get(self, server: Server) -> str | None:
        flags = self._flags(server)
        same = self.by_id.get(id(server))
        if same is not None and same[0] is server and same[1] == flags:
            return same[2]
        block = self.blocks.get((server, flags))
        if block is not None:
            self._remember(server, flags, block)
        return block

    def put(self, server: Server, block: str) -> str:
        flags = self._flags(server)
        self.blocks[(server, flags)] = block
        self._remember(server, flags, block)
        return block

    def _remember(self, server: Server, flags: tuple[bool, ...], block: str) -> None:
        if len(self.by_id) > len(self.blocks):  # entries of servers gone (the Server is kept, so ids are not reused)
            self.by_id = {}
        self.by_id[id(server)] = (server, flags, block)


class Renderer:
    """Renders a Model with the package templates, optionally overridden from a directory."""

    def __init__(self, override_dir: str | Path | None = None, sources: Mapping[str, str] | None = None):
        self.override_dir = Path(override_dir) if override_dir else None
        self.builtin = _package_sources()
        if sources is not None:
            loader: jinja2.BaseLoader = jinja2.DictLoader({**self.builtin, **sources})
        elif self.override_dir is not None:
            loader = jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(str(self.override_dir)), jinja2.DictLoader(self.builtin)])
        else:
            loader = jinja2.DictLoader(self.builtin)
        self.env = _environment(loader)
        self.server_blocks = BlockCache()
        self._render_lock = threading.Lock()  # the cache is one render's at a time (sync, webhook)

    def sources(self) -> dict[str, str]:
        """The template texts this renderer uses now (to pin them as 'last good')."""
        out = dict(self.builtin)
        if self.override_dir is not None:
            for n in self.builtin:
                p = self.override_dir / n
                if p.is_file():
                    out[n] = p.read_text(encoding="utf-8")
        return out

    def with_sources(self, sources: Mapping[str, str]) -> Renderer:
        return Renderer(sources=sources)

    def render(self, model: Model, ctx: RenderContext) -> str:
        try:
            tpl = self.env.get_template("nginx.conf.j2")
            ctx = ctx.for_model(model)
            with self._render_lock:
                text = tpl.render(model=model, s=model.settings, ctx=ctx,
                                  server_blocks=self.server_blocks.begin(model, ctx))
            return merge_servers(text, ctx.merge_min)
        except RenderError:
            raise
        except jinja2.TemplateError as e:
            where = f" ({e.filename}:{e.lineno})" if isinstance(e, jinja2.TemplateSyntaxError) else ""
            raise RenderError(f"template error{where}: {e}") from None


class TemplateSets:
    """The template sets a configuration is rendered with, in the order to try: the operator's
    override (`--template-dir`, read afresh each time), the last override nginx took, then the
    built-in templates."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        self.override_dir = Path(override_dir) if override_dir else None
        self.builtin = Renderer()
        self.last_good: Renderer | None = None

    def ordered(self) -> list[tuple[str, Renderer]]:
        out: list[tuple[str, Renderer]] = []
        if self.override_dir is not None:
            out.append(("override", Renderer(self.override_dir)))
            if self.last_good is not None:
                out.append(("last-good", self.last_good))
        out.append(("built-in", self.builtin))
        return out

    def took(self, name: str, renderer: Renderer) -> None:
        """nginx loaded what `renderer` rendered: an override becomes the last good one."""
        if name == "override":
            self.last_good = renderer.with_sources(renderer.sources())
