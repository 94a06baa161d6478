"""The nginx master process: files, `nginx -t`, reloads, restarts.

`Nginx` owns one private prefix directory (under the state dir) and one master process
started as our child with `daemon off`. `apply(text, files)` writes the certificate and
auth files (content-addressed, so the live configuration's files never change under it),
writes the candidate config beside the live one, runs `nginx -t` on it, swaps it in
atomically, sends SIGHUP and waits until the workers answer with the new configuration's
id on a private unix socket and every worker of the previous configuration has stopped
accepting (`workers.py`). If anything fails the previous file is put back and nginx keeps
serving the last configuration that passed. Files are deleted only when no live or
draining worker generation refers to them. The master is started and watched by
`launcher.py` (parent-death signal, exit noticed at once).

Design choice: success means "only the new workers accept", not "the signal was sent": the
config id embedded in nginx.conf is read back from nginx itself, and old workers' state
from /proc.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .launcher import Child, launcher
from .workers import Generation, Generations, ProcessSample, accepting, process_samples, workers

log = logging.getLogger(__name__)

TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class ReloadRefused(RuntimeError):
    """The master printed an [emerg] after SIGHUP: it kept the old configuration."""


class NginxError(RuntimeError):
    pass


@dataclass(frozen=True)
class ApplyResult:
    changed: bool  # False: the same bytes were already live, nothing done
    ok: bool
    config_id: str
    message: str = ""
    refused: bool = False  # nginx -t refused the text (the templates' or an object's fault, not nginx's)


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NginxError("nginx is not installed (Debian: apt-get install nginx-extras; or run scripts/setup.sh)")


def config_id_of(text: str, files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256(text.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name])
    return h.hexdigest()[:16]


# Files nginx *workers* open per request (auth_basic_user_file); certificates and client CAs
# are read by the master at load time and stay 0600.
WORKER_READ_PREFIXES = ("htpasswd",)


def write_files(directory: Path, files: Mapping[str, bytes], share_certificates: bool = False) -> None:
    """Write certificate/auth files (0600, atomically); names are content-addressed.

    As root, htpasswd files are 0640 with the group of `nobody` (the worker user), so
    basic auth can read them, and so are certificates with `share_certificates` (the Lua
    handshake callback loads them: RenderContext.lua_certificates; workers hold every loaded
    key in memory either way, forked from the master); nothing else is readable by the workers.
    """
    directory.mkdir(parents=True, exist_ok=True)
    worker_gid = pwd.getpwnam("nobody").pw_gid if os.geteuid() == 0 else -1
    for name, content in files.items():
        path = directory / name
        shared = worker_gid >= 0 and (name.startswith(WORKER_READ_PREFIXES)
                                      or (share_certificates and name.endswith(".pem")))
        if path.exists() and path.read_bytes() == content and (not shared or path.stat().st_gid == worker_gid):
            continue
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        if shared:
            os.chown(tmp, -1, worker_gid)
            os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    if worker_gid >= 0:  # the workers may traverse the directory, not list it
        os.chown(directory, -1, worker_gid)
        os.chmod(directory, 0o710)


def workers_can_reach(path: Path) -> bool:
    """Whether nginx workers (user nobody when we are root) can traverse to `path`."""
    if os.geteuid() != 0:
        return True
    return all(os.stat(p).st_mode & 0o001 for p in path.resolve().parents if p.exists())


def share_with_workers(path: Path) -> None:
    """As root, let the workers (user nobody) read one file: group nobody, 0640, and let them
    traverse its directory. Used for the default certificate, which workers load per handshake."""
    if os.geteuid() != 0:
        return
    gid = pwd.getpwnam("nobody").pw_gid
    os.chown(path, -1, gid)
    os.chmod(path, 0o640)
    os.chown(path.parent, -1, gid)
    os.chmod(path.parent, 0o710)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Nginx:
    """One nginx master under a private prefix."""

    def __init__(self, prefix: str | Path, binary: str | None = None, reload_timeout: float = 15.0) -> None:
        self.prefix = Path(prefix).resolve()
        self.binary = binary or find_nginx()
        self.reload_timeout = reload_timeout  # the least time a start or reload is given
        self.load_seconds = 0.0  # how long nginx took to load the last configuration (its nginx -t)
        # nginx -t before every reload loads each change twice. A running master that cannot
        # load a configuration says so ([emerg]) and keeps the old one: only then is nginx -t run,
        # for the precise error and the search for the Ingress to blame.
        self.test_before_reload = False
        self.share_certificates = False  # certificates readable by the workers (Lua loads them per handshake)
        self.conf = self.prefix / "nginx.conf"
        self.status_socket = self.prefix / "status.sock"
        self.child: Child | None = None
        self.live_id = ""
        self.live_files: frozenset[str] = frozenset()
        self.generations = Generations()
        self.max_draining = 0  # > 0: close the oldest draining generations beyond this many
        self.on_exit: Callable[[], None] | None = None  # called (from a watcher thread) when nginx dies
        self.died = threading.Event()  # set when the master exits unexpectedly; keep_running clears it
        self._lock = threading.RLock()
        self._stopping = False
        self.restarts = 0
        self._retry_at, self._retry_delay = 0.0, 0.0

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.child.proc if self.child is not None else None

    # -- files ---------------------------------------------------------------------------
    def prepare(self) -> None:
        self.prepare_dirs(self.prefix)

    @staticmethod
    def prepare_dirs(prefix: Path) -> None:
        """The directories nginx and its workers need under `prefix`, with modes they can use."""
        for d in ("", "certs", "tmp", "logs", *(f"tmp/{t}" for t in TEMP_DIRS)):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        os.chmod(prefix / "certs", 0o700)  # write_files opens it to the worker group (0710)
        if os.geteuid() == 0:  # workers run as nobody and must write request-body temp files
            nobody = pwd.getpwnam("nobody")
            for t in TEMP_DIRS:
                os.chown(prefix / "tmp" / t, nobody.pw_uid, nobody.pw_gid)
            os.chmod(prefix / "tmp", 0o755)
            os.chmod(prefix, 0o755)

    def write_files(self, files: Mapping[str, bytes]) -> None:
        write_files(self.prefix / "certs", files, self.share_certificates)

    def add_files(self, files: Mapping[str, bytes]) -> None:
        """Files the live configuration uses from now on without a reload (certificates the
        Lua table names): written, and kept until a reload's pruning."""
        with self._lock:
            self._add_files(files)

    def _add_files(self, files: Mapping[str, bytes]) -> None:
        """Names are content-addressed: one the live configuration holds is not read again."""
        new = {n: c for n, c in files.items() if n not in self.live_files}
        if new:
            self.write_files(new)
            self.live_files |= frozenset(new)

    def prune_files(self) -> None:
        """Delete files that neither the live configuration nor a draining generation uses."""
        keep = self.live_files | self.generations.files_in_use()
        for p in (self.prefix / "certs").iterdir():
            if p.name not in keep and p.name != "default.pem":
                p.unlink(missing_ok=True)

    def reap(self) -> None:
        """Forget worker generations that have exited and delete the files only they used."""
        if not self._lock.acquire(blocking=False):
            return  # a reload is under way; it reaps when it is done
        try:
            if self.child is not None and self.generations.draining and self.generations.reap(self.child.pid):
                self.prune_files()
        finally:
            self._lock.release()

    # -- test / start / reload -------------------------------------------------------------
    def test(self, conf: Path, measure: bool = True) -> tuple[bool, str]:
        """nginx -t; `measure`: the configuration is the one to go live, so its load time sets
        the next deadlines (a quarantine search tests smaller candidates)."""
        started = time.monotonic()
        r = subprocess.run([self.binary, "-t", "-q", "-p", str(self.prefix), "-c", str(conf)],
                           capture_output=True, text=True, timeout=load_timeout(60.0, self.load_seconds))
        if measure:
            self.load_seconds = time.monotonic() - started  # a reload loads the same text once more
        return r.returncode == 0, (r.stderr or r.stdout).strip()

    @property
    def wait_seconds(self) -> float:
        """How long a start or reload may take before it counts as failed: the configured least
        time, or more when loading this configuration is slow (a slow reload is not a failed one)."""
        return load_timeout(self.reload_timeout, self.load_seconds)

    def check(self, text: str, files: Mapping[str, bytes]) -> tuple[bool, str]:
        """`nginx -t` on a candidate that is never made live."""
        with self._lock:
            self.write_files(files)
            candidate = self.prefix / "nginx.conf.check"
            candidate.write_text(text)
            ok, out = self.test(candidate, measure=False)
            return ok, _last_error(out) if not ok else ""

    def apply(self, text: str, config_id: str, files: Mapping[str, bytes],
              lua_files: frozenset[str] = frozenset()) -> ApplyResult:
        """Make `text` live. `lua_files`: certificates that only the Lua table names (not in
        config_id): written even when the configuration is unchanged, since the table that
        names them is pushed without a reload; kept until the next reload's pruning."""
        with self._lock:
            if config_id == self.live_id and self.running():
                self._add_files({n: files[n] for n in lua_files})
                return ApplyResult(False, True, config_id, "unchanged")
            self.write_files(files)
            candidate = self.prefix / "nginx.conf.new"
            candidate.write_text(text)
            tested = self.test_before_reload or not self.running()
            if tested:
                ok, out = self.test(candidate)
                if not ok:
                    return ApplyResult(True, False, config_id, f"nginx -t failed: {_last_error(out)}", refused=True)
            previous = self.conf.read_bytes() if self.conf.exists() else None
            os.replace(candidate, self.conf)
            try:
                old_workers = self._start_or_reload(config_id)
            except ReloadRefused as e:
                if previous is not None:
                    self.conf.write_bytes(previous)  # the master kept it: no signal needed
                candidate.write_text(text)
                ok, out = self.test(candidate)
                if not ok:
                    return ApplyResult(True, False, config_id, f"nginx -t failed: {_last_error(out)}", refused=True)
                return ApplyResult(True, False, config_id, f"nginx did not load the configuration: {e}")
            except NginxError as e:
                self._restore(previous)
                return ApplyResult(True, False, config_id, str(e))
            self.generations.retire(Generation(self.live_id, old_workers, self.live_files))
            self.live_id, self.live_files = config_id, frozenset(files)
            self.prune_files()
            return ApplyResult(True, True, config_id, "reloaded")

    def _restore(self, previous: bytes | None) -> None:
        if previous is None:
            return
        self.conf.write_bytes(previous)
        if self.running():
            self._signal(signal.SIGHUP)

    def _start_or_reload(self, config_id: str) -> frozenset[int]:
        """Make config_id live; returns the workers it replaced, once none of them accepts."""
        if not self.running() or self.child is None:
            self._note_death()
            self._start()
            self._wait_for(config_id)
            return frozenset()
        master = self.child.pid
        self._bound_draining(master)
        old = frozenset(pid for pid, accepts in workers(master).items() if accepts)
        mark = self.child.error_count
        started = time.monotonic()
        self._signal(signal.SIGHUP)
        self._wait_for(config_id, refused_after=mark)
        self.load_seconds = max(self.load_seconds * 0.5, time.monotonic() - started)  # the deadline follows it
        self._wait_until_stopped_accepting(master, old)
        return old

    def _bound_draining(self, master: int) -> None:
        if self.max_draining <= 0:
            return
        for g in self.generations.close_oldest(master, keep=self.max_draining - 1):
            log.warning("closing the remaining connections of configuration %s (workers %s): more than %d "
                        "generations draining (max-draining-generations)", g.config_id or "?",
                        ",".join(map(str, sorted(g.pids))) or "-", self.max_draining)

    def _wait_until_stopped_accepting(self, master: int, old: frozenset[int]) -> None:
        """nginx tells old workers to stop accepting ~100 ms after the new ones start."""
        deadline = time.monotonic() + self.wait_seconds
        remaining = old
        while remaining and time.monotonic() < deadline:
            remaining = accepting(master, remaining)
            if remaining:
                time.sleep(0.005)
        if remaining:
            log.warning("old nginx workers %s still accept connections %.0fs after the reload",
                        ",".join(map(str, sorted(remaining))), self.wait_seconds)

    def _note_death(self) -> None:
        if self.live_id and self.child is not None:  # it was serving: this start is a restart
            log.error("nginx exited unexpectedly (%s); restarting", _exit_reason(self.child.proc.returncode))
            self.restarts += 1
            self._kill_orphans()
            self.generations.clear()

    def _start(self) -> None:
        self.status_socket.unlink(missing_ok=True)
        # nginx runs in a session of its own (a Ctrl-C reaches us, and we stop it gracefully);
        # the launcher makes the kernel stop it too if we are killed without a chance to.
        self.child = launcher().start(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"], self._exited)

    def _exited(self, child: Child) -> None:
        if child is not self.child or self._stopping:
            return
        log.error("nginx master (pid %d) exited: %s", child.pid, _exit_reason(child.proc.returncode))
        self.died.set()
        if self.on_exit is not None:
            self.on_exit()

    def _wait_for(self, config_id: str, refused_after: int | None = None) -> None:
        deadline = time.monotonic() + self.wait_seconds
        seen = ""
        while time.monotonic() < deadline:
            child = self.child
            if refused_after is not None and child is not None and child.error_count > refused_after \
                    and "[emerg]" in child.last_error():
                raise ReloadRefused(child.last_error())
            if self.child is not None and self.child.proc.poll() is not None:
                self.child.exited.wait(timeout=1.0)  # its last error line
                said = self.child.last_error()
                raise NginxError(f"nginx exited ({_exit_reason(self.child.proc.returncode)})"
                                 + (f": {said}" if said else ""))
            seen = self.live_config_id()
            if seen == config_id:
                return
            time.sleep(0.01)
        raise NginxError(f"nginx did not serve config {config_id} within {self.wait_seconds:.0f}s (saw {seen!r})")

    def live_config_id(self) -> str:
        """The config id the current workers answer with ('' when unreachable)."""
        try:
            conn = UnixHTTPConnection(str(self.status_socket), timeout=1.0)
            conn.request("GET", "/ingressctl/config-id", headers={"Connection": "close"})
            body = conn.getresponse().read().decode()
            conn.close()
            return body.strip()
        except OSError:
            return ""

    def status_page(self, path: str) -> str:
        """A page of nginx's private status socket (metrics); OSError when nginx does not answer."""
        conn = UnixHTTPConnection(str(self.status_socket), timeout=2.0)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            if resp.status != 200:
                raise OSError(f"nginx answered {resp.status}")
            return body
        finally:
            conn.close()

    def processes(self) -> list[ProcessSample]:
        """CPU and memory of the master and its workers (/proc), for the metrics."""
        return process_samples(self.child.pid) if self.child is not None else []

    # -- lifecycle -------------------------------------------------------------------------
    def keep_running(self) -> bool:
        """The crash watch's step: restart a dead nginx, reap exited generations; True when it
        restarted (with the last good configuration, which the caller should bring up to date)."""
        self.died.clear()
        restarted = self.ensure_running()
        self.reap()
        return restarted

    def running(self) -> bool:
        return self.child is not None and self.child.proc.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        if self.child is not None:
            self.child.proc.send_signal(sig)

    def ensure_running(self) -> bool:
        """Restart nginx with the last good config if it died; True if a restart happened."""
        with self._lock:
            if self._stopping or self.running() or not self.live_id or not self.conf.exists():
                return False
            if time.monotonic() < self._retry_at:  # it failed to start: retry with a backoff
                return False
            self._note_death()
            self._start()
            try:
                self._wait_for(self.live_id)
                self._retry_delay = 0.0
            except NginxError as e:
                self._retry_delay = min(max(self._retry_delay * 2, 0.5), 30.0)
                self._retry_at = time.monotonic() + self._retry_delay
                log.error("restart failed (next try in %.1fs): %s", self._retry_delay, e)
            return True

    def _kill_orphans(self) -> None:
        """Workers of a master that died still hold the listening sockets: end them first."""
        if self.child is None:
            return
        try:
            os.killpg(self.child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        with self._lock:
            self._stopping = True
            proc = self.proc
            if not self.running() or proc is None:
                return
            self._signal(signal.SIGQUIT if graceful else signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            self.generations.clear()


def load_timeout(least: float, load_seconds: float) -> float:
    """A deadline that follows the measured load time: 4x what loading took, plus 5 s for the
    workers to start, never under `least`. At 30,000 Ingresses nginx -t takes ~30 s: a fixed
    15 s made the first start fail for ever, and a good change under load roll back."""
    return max(least, 4 * load_seconds + 5)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"code {code}"


def _last_error(output: str) -> str:
    lines = [ln for ln in output.splitlines() if "[emerg]" in ln or "[alert]" in ln or "[crit]" in ln]
    return (lines[-1] if lines else output.splitlines()[-1] if output else "no output").strip()
