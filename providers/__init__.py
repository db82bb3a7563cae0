"""Change paths and DNS querying: the adapters that talk to DNS servers and DNS APIs.

- ``rfc2136.Rfc2136Path``: TSIG-signed RFC2136 updates with compare-and-swap prerequisites.
- ``authoritative.DnsAuthoritativeQuerier``: asks one authoritative server (RD off, AA required).
- ``dnswire``: the one place where dnspython values become the core's canonical rrsets.

Providers import only ``core`` and third-party libraries, never each other's packages.
"""
