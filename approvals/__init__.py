"""Who may approve what, decided only from locally held rules (never an identity provider)."""
