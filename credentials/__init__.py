"""Credential sources: where breakglass leases short-lived change-path credentials.

``vault.VaultTsigSource`` logs in to Vault/OpenBao with AppRole, reads a TSIG key from KV v2
and hands back a lease whose Vault token is revoked once the change is applied.
"""
