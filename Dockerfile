# The ingressctl image: Debian's nginx-extras (Lua and stream modules), the netfilter tools
# the Service proxy drives, and the ingressctl package, run as the non-root user 10101.
# No registry is assumed: build it and push it where your cluster pulls images from, e.g.
#   docker build -t ingressctl:0.1.0 .
#   docker tag ingressctl:0.1.0 registry.example.com/ingressctl:0.1.0   (then push, and
#   `kustomize edit set image ingressctl=registry.example.com/ingressctl:0.1.0` in the overlay)
# The manifests under deploy/ use the image name ingressctl:0.1.0 and run `ingressctl <command>`.
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates nginx-extras python3 python3-venv libcap2-bin iptables nftables ipvsadm conntrack \
    && rm -rf /var/lib/apt/lists/*

# nginx binds ports 80 and 443 as a non-root user in the hostNetwork DaemonSet: give the
# binary that one capability. A pod that runs nginx must therefore keep NET_BIND_SERVICE in
# its capabilities: the kernel refuses to exec the file otherwise.
RUN setcap cap_net_bind_service=+ep /usr/sbin/nginx
# nginx opens its compiled-in error log before it reads our configuration; the root
# filesystem is read-only in the pods, so send that log to stderr as the rest of it.
RUN ln -sf /dev/stderr /var/log/nginx/error.log
RUN groupadd --system --gid 10101 ingressctl \
    && useradd --system --uid 10101 --gid 10101 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin ingressctl

COPY pyproject.toml README.md /src/
COPY ingressctl /src/ingressctl
COPY templates /src/templates
RUN python3 -m venv /opt/ingressctl \
    && /opt/ingressctl/bin/pip install --no-cache-dir /src \
    && rm -rf /src

ENV PATH=/opt/ingressctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10101:10101
ENTRYPOINT ["ingressctl"]
