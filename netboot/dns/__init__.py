"""DNS: authoritative for the node domain and reverse zones, forwarding resolver for the
rest (zone.py, live.py, cache.py, forwarder.py, acl.py, resolver.py, server.py)."""
