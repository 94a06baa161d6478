"""LoadBalancer addresses: pools and allocation (ipam), and their announcement on the
local network (announce: addresses on a dummy interface, gratuitous ARP)."""
