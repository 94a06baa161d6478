"""Thin wrappers over the system: spliced TCP connections and conntrack deletion."""
