"""Pure domain of breakglass: models, plans, digests, verification logic and ports.

Nothing here performs I/O or imports another breakglass package; every other
layer depends on this one.
"""
