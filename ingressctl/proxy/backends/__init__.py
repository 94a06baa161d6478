"""Proxy backends: iptables, nftables (with libnftables), ipvs and the userspace proxy.
Each turns the core's ServiceTable into kernel rules or listening sockets."""
