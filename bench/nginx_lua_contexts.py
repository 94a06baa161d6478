"""Benchmark: what loading the Lua module costs nginx per server block (issue 18 §1).

Debian's lua-nginx-module (0.10.23, in nginx-extras) creates an OpenSSL context in every
merged location configuration, used or not (later releases reuse the parent's). This loads
N minimal servers (one location each, no TLS anywhere) with and without the module and
prints `nginx -t` time and peak memory side by side: the difference is that cost alone.

    .venv/bin/python bench/nginx_lua_contexts.py [--sizes 1000,3000,10000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

LUA = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")


def config(n: int, lua: bool, prefix: Path) -> str:
    head = "".join(f"load_module {m};\n" for m in LUA) if lua else ""
    servers = "\n".join(f"server {{ listen 127.0.0.1:18080; server_name h{i}.test; location / {{ return 200; }} }}"
                        for i in range(n))
    return (f"{head}pid {prefix}/nginx.pid; error_log stderr crit; events {{}}\n"
            f"http {{ access_log off; server_names_hash_max_size 65536; server_names_hash_bucket_size 128;\n"
            f"{servers}\n}}\n")


def load(conf: Path, prefix: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    subprocess.run(["nginx", "-t", "-q", "-p", str(prefix), "-c", str(conf)], check=True)
    took = time.monotonic() - started
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return took, peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,3000,10000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressctl-lua-") as tmp:
        prefix = Path(tmp)
        (prefix / "logs").mkdir()
        print(f"{'servers':>7} | {'nginx -t':>8} | {'with Lua':>8} | ratio | {'peak RSS with Lua':>17}")
        for n in (int(x) for x in args.sizes.split(",")):
            plain, lua = prefix / f"plain-{n}.conf", prefix / f"lua-{n}.conf"
            plain.write_text(config(n, False, prefix))
            lua.write_text(config(n, True, prefix))
            t_plain, _ = load(plain, prefix)
            t_lua, rss = load(lua, prefix)
            print(f"{n:>7} | {t_plain:>7.2f}s | {t_lua:>7.2f}s | {t_lua / t_plain:>5.1f} | {rss:>14.0f} MB")


if __name__ == "__main__":
    main()
