"""The sync loop shared by `ingressctl run` (files) and `ingressctl controller` (API).

Store changes wake one thread that coalesces them (a short debounce), takes a snapshot,
builds the model (pure), renders it and hands the text to `nginx.process.Nginx.apply`,
which skips identical configurations, tests, swaps and confirms the reload. Results are
passed to observers (status writer, event recorder) as data: the loop writes nothing to
the API itself.

Design choice: rendering falls back in order — the override templates, the last override
that went live, the built-in templates — so a broken `--template-dir` edit never costs
traffic; nginx itself keeps the last configuration that passed `nginx -t` whatever happens.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .gateway.build import GatewayOptions
from .gateway.merge import with_gateway
from .ingress.backends import refresh_upstreams
from .ingress.build import BuildMemo, BuildOptions, BuildResult, build
from .ingress.classes import ClassFilter
from .ingress.model import Model, Problem
from .ingress.settings import Settings, parse_settings
from .ingress.streams import stream_services
from .ingress.tls import refresh_certificates
from .logs import object_fields
from .metrics import ControllerMetrics
from .metrics_compat import IngressNginxMetrics
from .metrics_requests import NginxCollector, RequestMetricsOptions
from .nginx.defaultcert import ensure_default_certificate
from .nginx.dynamic import EndpointPusher, certificate_table, endpoint_line, endpoint_table, lua_available
from .nginx.merge import MIN_GROUP
from .nginx.process import ApplyResult, Nginx, config_id_of, share_with_workers, write_files
from .nginx.render import CONFIG_ID_MARK, LUA_MODULES, RenderContext, Renderer, RenderError, TemplateSets
from .objects import Ingress
from .quarantine import Quarantine
from .store import Change, Snapshot, Store
from .watch import DebouncedWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerOptions:
    state_dir: Path
    http_port: int = 80
    https_port: int = 443
    listen: tuple[str, ...] = ("",)
    classes: ClassFilter = field(default_factory=ClassFilter)
    configmap: str = ""  # ns/name
    default_backend: str = ""  # ns/name:port
    template_dir: Path | None = None
    resolver: tuple[str, ...] = ()
    debounce: float = 0.05
    dynamic_endpoints: bool = False  # endpoint changes through the Lua balancer, no reload
    lazy_default_certificate: bool = True  # False when nginx workers cannot reach the state dir
    redirect_https_port: int = 0  # --redirect-https-port (0: redirects name no port)
    default_certificate: str = ""  # --default-ssl-certificate NS/NAME
    stale_after: float = 60.0  # /readyz fails when the wanted configuration has not gone live for longer
    gateway: GatewayOptions = field(default_factory=GatewayOptions)  # Gateway API (gateway/build.py)
    request_metrics: RequestMetricsOptions | None = None  # per-request metrics (with the Lua balancer)
    ssl_passthrough: bool = False  # --enable-ssl-passthrough
    tcp_services: str = ""  # --tcp-services-configmap NS/NAME
    udp_services: str = ""  # --udp-services-configmap NS/NAME
    # layouts the benchmarks compare (bench/nginx_load.py); the defaults are what runs
    certificates_by_lua: bool = True  # RenderContext.lua_certificates where it can be
    merge_min: int = MIN_GROUP  # nginx/merge.py: hosts alike that share one server block (0: never)

    @property
    def prefix(self) -> Path:
        return (self.state_dir / "nginx").resolve()

    def render_context(self) -> RenderContext:
        lua = LUA_MODULES
        modules = lua if self.dynamic_endpoints else ()
        return RenderContext(prefix=str(self.prefix), http_port=self.http_port, https_port=self.https_port,
                             listen=self.listen, resolver=self.resolver, dynamic=self.dynamic_endpoints,
                             modules=modules, lua_modules=lua if lua_available() else (),
                             lazy_default_certificate=self.lazy_default_certificate,
                             redirect_https_port=self.redirect_https_port,
                             request_metrics=self.dynamic_endpoints and self.request_metrics is not None,
                             metrics_buckets=self._metric_bounds(), ssl_passthrough=self.ssl_passthrough,
                             certificates_by_lua=self.certificates_by_lua, merge_min=self.merge_min)

    def _metric_bounds(self) -> tuple[str, str, str]:
        opts = self.request_metrics or RequestMetricsOptions()
        return (opts.lua_bounds("time"), opts.lua_bounds("length"), opts.lua_bounds("size"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ingressctl")
    except PackageNotFoundError:
        return "unknown"


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system. A build and render at 10,000
    Ingresses free tens of MB that glibc otherwise keeps (RSS 228 -> 199 MB; 2 ms)."""
    if _TRIM is not None:
        _TRIM(0)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Build and render allocate many small, short-lived objects; with tens of thousands of
    live objects in the store, generational GC passes cost more than the work itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class OldGeneration:
    """Full garbage collections where they delay no change. Python starts one when enough
    objects survived into the old generation, from whatever thread allocates: at 10,000
    Ingresses one takes 0.35 s, and landing between a change and nginx serving it, it made
    one change in ten take 1.1 s instead of 0.7 s. While the sync loop runs, the young
    generations stay automatic and the old one is collected by the loop: once it has been
    idle a second, at most every `idle_every` s (a change that comes during one waits for
    it), or after a sync when none ran for `latest` s (changes that never pause)."""

    def __init__(self, idle_every: float = 120.0, latest: float = 600.0) -> None:
        self.idle_every, self.latest = idle_every, latest
        self.last = time.monotonic()
        self.saved: tuple[int, int, int] | None = None

    def take_over(self) -> None:
        if self.saved is None:
            self.saved = gc.get_threshold()
            gc.set_threshold(self.saved[0], self.saved[1], 1 << 30)  # never by Python itself

    def give_back(self) -> None:
        if self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None

    def idle(self) -> None:
        self._collect_after(self.idle_every)

    def synced(self) -> None:
        self._collect_after(self.latest)

    def _collect_after(self, seconds: float) -> None:
        if self.saved is not None and time.monotonic() - self.last >= seconds:
            gc.collect()
            self.last = time.monotonic()


def settings_from(snap: Snapshot, configmap: str) -> tuple[Settings, list[Problem]]:
    """The controller ConfigMap's settings, and its problems as warnings on the ConfigMap
    (not found, a bad value kept at its default, an unknown key): Events, metric, log."""
    if not configmap:
        return Settings(), []
    ns, _, name = configmap.partition("/")
    cm = snap.configmap(ns, name)
    if cm is None:
        return Settings(), [Problem("ConfigMap", ns, name, "ConfigMapNotFound", "not found; using defaults", True)]

    def lookup(namespace: str, other: str) -> Mapping[str, str] | None:
        found = snap.configmap(namespace, other)
        return None if found is None else found.data

    settings, problems = parse_settings(cm.data, lookup)
    return settings, [Problem("ConfigMap", ns, name, p.event_reason, f"{p}", True) for p in problems]


def model_files(model: Model) -> dict[str, bytes]:
    """Files the configuration refers to, by name under <prefix>/certs/."""
    files = {c.file_name: c.cert_pem + c.key_pem for c in model.certificates}
    files.update((f.file_name, f.content) for f in model.auth_files)  # htpasswd, client CAs
    return files


FAST_KINDS = frozenset({"EndpointSlice", "Secret"})  # changes a fast path may apply without a build
QUIET = 0.01  # seconds without a store change that end the coalescing of a burst


@dataclass(frozen=True)
class Rendered:
    text: str  # with the config id filled in
    config_id: str
    files: dict[str, bytes]
    result: BuildResult
    lua_files: frozenset[str] = frozenset()  # certificates only the Lua table names: not in the config id


class Controller:
    def __init__(self, store: Store, options: ControllerOptions, nginx: Nginx | None = None,
                 metrics: ControllerMetrics | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.store, self.options = store, options
        self.nginx = nginx
        self.metrics = metrics or ControllerMetrics()
        self.compat = IngressNginxMetrics(self.metrics.registry, options.classes.controller, _version())
        self.metrics.registry.register(NginxCollector(
            self._nginx_page, options.request_metrics or RequestMetricsOptions(), self.compat.labels,
            options.render_context().request_metrics, lambda: self.nginx.processes() if self.nginx else []))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.observers: list[Callable[[BuildResult], None]] = []
        self.templates = TemplateSets(options.template_dir)
        self.last_result: ApplyResult | None = None
        self.live_since: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._template_watch: DebouncedWatch | None = None
        self._reported: set[str] = set()
        self.phases: dict[str, float] = {}  # the last sync's seconds in build, render, nginx (logged when live)
        self.pusher = EndpointPusher(options.prefix) if options.dynamic_endpoints else None
        self.lua_certificates = options.render_context().lua_certificates  # certificates in the endpoint table
        if nginx is not None:
            nginx.share_certificates = self.lua_certificates
        self.live_model: Model | None = None
        self.build_memo = BuildMemo()  # the sync loop's builds reuse what did not change
        self.old_generation = OldGeneration()
        self._pending: list[Change] = []
        self._restarts_seen = 0
        self._lua = lua_available()
        self.quarantine = Quarantine()
        self.live_ingresses: dict[str, Ingress | None] = {}  # key -> the Ingress in the configuration nginx took
        self._pending_lock = threading.Lock()
        self.draining = False
        self.failing_since: float | None = None  # monotonic time the wanted config first failed to go live

    # -- pure-ish pipeline ------------------------------------------------------------------
    def build(self, snap: Snapshot, exclude: frozenset[str] = frozenset(), quarantine: bool = True,
              memo: BuildMemo | None = None) -> BuildResult:
        settings, settings_problems = settings_from(snap, self.options.configmap)
        if quarantine:
            exclude |= self.quarantine.current(snap)
        opts = BuildOptions(classes=self.options.classes, settings=settings,
                            default_backend=self.options.default_backend, now=self.clock(),
                            lua=self._lua, exclude=exclude, default_certificate=self.options.default_certificate,
                            balancer=self.options.dynamic_endpoints, ssl_passthrough=self.options.ssl_passthrough,
                            memo=memo)
        result = with_gateway(build(snap, opts), snap, dataclasses.replace(self.options.gateway, now=opts.now))
        if self.options.tcp_services or self.options.udp_services:
            # nginx's HTTP listeners (Gateway listeners too) own their ports: a TCP service there
            # would make every reload fail to bind
            taken = {self.options.http_port, self.options.https_port}
            taken.update(p for s in result.model.servers for p in s.ports)
            streams, stream_problems = stream_services(
                snap, self.options.tcp_services, self.options.udp_services, frozenset(taken))
            result = dataclasses.replace(result, model=dataclasses.replace(result.model, streams=streams),
                                         problems=result.problems + stream_problems)
        extra = tuple(settings_problems) + (self.quarantine.problems() if self.quarantine.entries else ())
        return dataclasses.replace(result, problems=result.problems + extra) if extra else result

    def prepare_state(self, rendered: Rendered) -> None:
        """Everything `rendered` refers to, under the state dir (render: `nginx -t` passes on it)."""
        Nginx.prepare_dirs(self.options.prefix)
        share_with_workers(ensure_default_certificate(self.options.prefix / "certs" / "default.pem"))
        write_files(self.options.prefix / "certs", rendered.files, self.lua_certificates)
        if self.options.dynamic_endpoints:
            pusher = EndpointPusher(self.options.prefix)
            pusher.install_lua()
            pusher.write_file(endpoint_table(rendered.result.model, self.lua_certificates))

    def renderers(self) -> list[tuple[str, Renderer]]:
        return self.templates.ordered()

    def render(self, result: BuildResult, renderer: Renderer) -> Rendered:
        text = renderer.render(result.model, self.options.render_context())
        files = model_files(result.model)
        # a certificate served through the Lua table changes without a reload: its file name
        # (content-addressed) is pushed with the endpoints (names the text uses stay in the id)
        lua = frozenset(certificate_table(result.model).values()) if self.lua_certificates else frozenset()
        cid = config_id_of(text, {n: c for n, c in files.items() if n not in lua})
        return Rendered(text.replace(CONFIG_ID_MARK, cid), cid, files, result, lua)

    def render_snapshot(self, snap: Snapshot) -> Rendered:
        """Build and render with the first template set that renders (no nginx involved)."""
        with gc_paused():
            result = self.build(snap)
        errors = []
        for name, renderer in self.renderers():
            try:
                with gc_paused():
                    return self.render(result, renderer)
            except RenderError as e:
                errors.append(f"{name} templates: {e}")
        raise RenderError("; ".join(errors))

    # -- effects ----------------------------------------------------------------------------
    def sync(self) -> ApplyResult:
        assert self.nginx is not None, "sync needs an nginx"
        started = time.monotonic()
        snap = self.store.snapshot()
        self._review_quarantine(snap)
        # no collection on the way to served (at 10,000 Ingresses one costs up to 0.4 s);
        # one that is due runs once the configuration is live
        with gc_paused():
            began = time.monotonic()
            result = self.build(snap, memo=self.build_memo)
            self.phases = {"build": time.monotonic() - began}
            outcome, refused_by = self._apply(result)
        if refused_by is not None and self._isolate(snap, result, refused_by, outcome.message):
            with gc_paused():
                result = self.build(snap, memo=self.build_memo)
            outcome, _ = self._apply(result)
        if outcome.ok:
            self.live_ingresses = {f"{s.namespace}/{s.name}": snap.ingresses.get(f"{s.namespace}/{s.name}")
                                   for s in result.statuses}
        self._record_problems(result)
        self._record_outcome(outcome, time.monotonic() - started)
        for observer in self.observers:
            try:
                observer(result)
            except Exception:
                log.exception("observer failed")
        release_free_memory()  # after the change is live
        return outcome

    def _apply(self, result: BuildResult) -> tuple[ApplyResult, Renderer | None]:
        """Render with the first template set that nginx takes; else the last refusal."""
        assert self.nginx is not None
        outcome = ApplyResult(False, False, "", "no template rendered")
        refused_by: Renderer | None = None
        for name, renderer in self.renderers():
            began = time.monotonic()
            try:
                with gc_paused():
                    rendered = self.render(result, renderer)
            except RenderError as e:
                log.error("rendering with %s templates failed: %s", name, e)
                continue
            self.phases["render"] = time.monotonic() - began
            table = endpoint_table(result.model, self.lua_certificates) if self.pusher is not None else {}
            if self.pusher is not None:
                self.pusher.write_file(table)
            self.nginx.max_draining = result.model.settings.max_draining_generations
            began = time.monotonic()
            outcome = self.nginx.apply(rendered.text, rendered.config_id, rendered.files, rendered.lua_files)
            self.phases["nginx"] = time.monotonic() - began
            if outcome.ok:
                self._endpoints_live(result.model, table, reloaded=outcome.changed)
                if outcome.changed:
                    self.templates.took(name, renderer)
                return outcome, None
            self.metrics.reload_failures.inc()
            if not outcome.refused:  # nginx itself failed (start, reload): no template is to blame
                log.error("nginx failed: %s", outcome.message)
                return outcome, None
            log.error("configuration from %s templates refused: %s", name, outcome.message)
            refused_by = renderer
        return outcome, refused_by

    def _check(self, snap: Snapshot, excluded: frozenset[str], renderer: Renderer,
               quarantine: bool = True) -> tuple[bool, str]:
        assert self.nginx is not None
        with gc_paused():
            rendered = self.render(self.build(snap, excluded, quarantine), renderer)
        return self.nginx.check(rendered.text, rendered.files)

    def _isolate(self, snap: Snapshot, result: BuildResult, renderer: Renderer, message: str) -> bool:
        """Find the Ingresses nginx refuses (group testing with nginx -t) and leave them out."""
        keys = [f"{s.namespace}/{s.name}" for s in result.statuses]  # oldest first
        try:
            return self.quarantine.isolate(snap, keys, self.live_ingresses,
                                           lambda excluded: not self._check(snap, excluded, renderer)[0], message)
        except RenderError as e:
            log.error("could not find the Ingress nginx refuses: %s", e)
            return False

    def _review_quarantine(self, snap: Snapshot) -> None:
        """A quarantined Ingress that changed goes back in only if it passes nginx -t on its own."""
        if not self.quarantine.entries:
            return
        everyone = frozenset(snap.ingresses)

        def passes_alone(key: str) -> tuple[bool, str]:
            for _name, renderer in self.renderers():
                try:
                    ok, error = self._check(snap, everyone - {key}, renderer, quarantine=False)
                except RenderError:
                    continue
                return ok, error
            return False, "no template rendered"

        for key in self.quarantine.review(snap, passes_alone):
            log.info("Ingress %s changed and passes nginx -t on its own; it is served again", key)

    def _endpoints_live(self, model: Model, table: dict[str, str], reloaded: bool) -> None:
        self.live_model = model
        if self.pusher is not None:
            if reloaded:
                self.pusher.loaded(table)  # init_by_lua read the file we just wrote
            elif self.pusher.push(table):  # endpoints and, with lua_certificates, certificates
                self.metrics.endpoint_updates.inc()
        if reloaded or self.lua_certificates:  # certificates change with a reload or with a push
            self.compat.certificates(model)

    def sync_fast(self, services: frozenset[str], secrets: frozenset[str]) -> bool:
        """Endpoint and certificate changes without build, render or reload; False when the
        change needs a full sync (which then also covers whatever was done here)."""
        if secrets and not self.sync_certificates(secrets):
            return False
        return not services or self.sync_endpoints(services)

    def sync_certificates(self, secrets: frozenset[str]) -> bool:
        """The fast path for rotated TLS Secrets that the Lua table serves: the new files are
        written and the table's changed entries pushed (see ingress.tls.refresh_certificates)."""
        if (not self.lua_certificates or self.pusher is None or self.live_model is None or self.nginx is None
                or not self.nginx.running()):
            return False
        started = time.monotonic()
        live = self.live_model
        with gc_paused():
            model = refresh_certificates(live, self.store.snapshot(), secrets, self.clock())
        if model is None:
            return False
        if model is not live:
            self.nginx.add_files(model_files(model))  # only names it does not hold yet are written
            before, after = certificate_table(live), certificate_table(model)
            if self.pusher.push_lines({k: v for k, v in after.items() if before.get(k) != v}):
                self.metrics.endpoint_updates.inc()
            self.live_model = model
            self.compat.certificates(model)
            log.info("certificates of %s rotated without a build or reload", ", ".join(sorted(secrets)))
        self.metrics.sync_duration.observe(time.monotonic() - started)
        return True

    def sync_endpoints(self, services: frozenset[str]) -> bool:
        """The fast path: new endpoints for `services` without build, render or reload.

        False when the change needs a full sync (see ingress.backends.refresh_upstreams).
        """
        if self.pusher is None or self.live_model is None or self.nginx is None or not self.nginx.running():
            return False
        started = time.monotonic()
        with gc_paused():
            model = refresh_upstreams(self.live_model, self.store.snapshot(), services)
        if model is None:
            return False
        touched = {u.name: endpoint_line(u) for u in model.upstreams
                   if u.service in services and u.lua_balanced and u.endpoints}
        if self.pusher.push_lines(touched):
            self.metrics.endpoint_updates.inc()
        self.live_model = model
        self.metrics.sync_duration.observe(time.monotonic() - started)
        return True

    def _record_outcome(self, outcome: ApplyResult, seconds: float) -> None:
        self.last_result = outcome
        if outcome.ok:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = time.monotonic()
        self.metrics.record_apply(outcome.ok, outcome.changed, outcome.config_id, seconds)
        if not outcome.changed:
            return
        self.compat.reload(outcome.ok, int(outcome.config_id[:12], 16) if outcome.ok else 0, time.time())
        if outcome.ok:
            if self.live_since is None:
                self.live_since = time.monotonic()
            phases = ", ".join(f"{k} {v * 1000:.0f}" for k, v in self.phases.items())
            log.info("configuration %s is live (%.0f ms: %s)", outcome.config_id, seconds * 1000, phases)

    def _record_problems(self, result: BuildResult) -> None:
        self.compat.orphaned(result.problems)
        self.metrics.record_problems(result.problems)
        for p in result.problems:
            if str(p) not in self._reported:
                log.warning("%s", p, extra=object_fields(p.kind, p.namespace, p.name, p.reason))
        self._reported.update(str(p) for p in result.problems)

    # -- loop ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.live_since is not None

    def _nginx_page(self, path: str) -> str:
        if self.nginx is None:
            raise OSError("no nginx")
        return self.nginx.status_page(path)

    def readiness(self) -> tuple[bool, str]:
        """/readyz: live, not shutting down, and not stale for longer than options.stale_after."""
        if self.draining:
            return False, "shutting down"
        if not self.ready:
            return False, "starting"
        if self.failing_since is not None:
            stale = time.monotonic() - self.failing_since
            if stale > self.options.stale_after:
                why = self.last_result.message if self.last_result else ""
                return False, (f"configuration stale for {stale:.0f}s (more than {self.options.stale_after:g}s): "
                               f"the wanted configuration does not go live: {why}")
        return True, "configuration live"

    def health(self) -> tuple[bool, str]:
        """/healthz: the sync loop runs and nginx runs (once it has served)."""
        loop = self._thread
        if loop is not None and loop.ident is not None and not loop.is_alive() and not self._stop.is_set():
            return False, "the sync loop has stopped"
        if self.nginx is not None and self.ready and not self.nginx.running():
            return False, "nginx is not running"
        return True, "ok"

    def begin_drain(self) -> None:
        """Shutting down: /readyz answers 503 from now on; nginx keeps serving."""
        self.draining = True

    def start(self) -> None:
        assert self.nginx is not None
        self.nginx.prepare()
        share_with_workers(ensure_default_certificate(self.options.prefix / "certs" / "default.pem"))
        if self.pusher is not None:
            self.pusher.install_lua()
        self.nginx.on_exit = self._wake.set  # the crash watch wakes the loop at once
        self.store.subscribe(self._note_change)
        if self.options.template_dir is not None:
            self._watch_templates(self.options.template_dir)
        self._wake.set()
        self.old_generation.take_over()
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
        self._thread.start()

    def request_sync(self) -> None:
        self._wake.set()

    def _note_change(self, change: Change) -> None:
        with self._pending_lock:
            self._pending.append(change)
        self._wake.set()

    def _take_pending(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """(Services whose endpoints changed, Secrets that changed) when nothing else changed;
        else None (a full sync)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending or not all(c.kinds <= FAST_KINDS for c in pending):
            return None
        services: frozenset[str] = frozenset().union(*(c.services for c in pending))
        secrets = frozenset(f"{ns}/{name}" for c in pending for kind, ns, name in c.keys if kind == "Secret")
        return services, secrets

    def _run(self) -> None:
        """Every failure is logged and the loop goes on; if it ever ends early, /healthz says so."""
        try:
            while not self._stop.is_set():
                woke = self._wake.wait(timeout=1.0)
                if self._stop.is_set():  # woken to stop: no last sync (it cost 26 s at 30,000 Ingresses)
                    break
                try:
                    self._step(woke)
                except Exception:
                    log.exception("sync failed; nginx keeps its last configuration")
        finally:
            if not self._stop.is_set():
                log.critical("the sync loop stopped; configuration changes are no longer applied")

    def _step(self, woke: bool) -> None:
        assert self.nginx is not None
        if self.nginx.died.is_set() or not woke:  # a death is handled first, before any debounce
            if self.nginx.keep_running():
                self._wake.set()  # it restarted with the last good config: bring it up to date
            elif not woke:
                self.old_generation.idle()
        else:
            self._coalesce()
            self._wake.clear()
            pending = self._take_pending()
            if not (pending and self.sync_fast(*pending)):
                self.sync()
            self.nginx.reap()
            self.old_generation.synced()
        if self.nginx.restarts > self._restarts_seen:
            self.metrics.nginx_restarts.inc(self.nginx.restarts - self._restarts_seen)
            self._restarts_seen = self.nginx.restarts

    def _coalesce(self) -> None:
        """Coalesce a burst of changes: wait until none came for QUIET seconds, and at most
        options.debounce in all. A lone change waits QUIET, not the whole debounce."""
        deadline = time.monotonic() + self.options.debounce
        while True:
            self._wake.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wake.wait(min(QUIET, remaining)) or self._stop.is_set():
                return

    def _watch_templates(self, directory: Path) -> None:
        self._template_watch = DebouncedWatch([directory], self._wake.set, debounce=0.05).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.old_generation.give_back()
        if self._template_watch is not None:
            self._template_watch.stop()
        if self.nginx is not None:
            # old workers may finish requests for up to worker-shutdown-timeout; wait that long
            grace = self.live_model.settings.worker_shutdown_timeout.seconds if self.live_model else 30
            self.nginx.stop(graceful=True, timeout=grace + 5)
