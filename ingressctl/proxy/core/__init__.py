"""The proxy's pure level: Services and endpoints as data, change tracking, rule
fragments, stale flows, scheduling and the UDP relay's state. No backend, no system
wrapper, no I/O."""
