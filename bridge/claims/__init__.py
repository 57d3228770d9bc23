"""Claim registry entries, one module per claim or group of claims sharing runs (SPEC B5).

Each module defines ``CLAIMS: list[bridge.registry.Claim]``; :data:`bridge.registry.CLAIM_MODULES`
lists them. Shared machinery: :mod:`robmem.bridge.claims.runs` (cached training runs),
:mod:`robmem.bridge.claims.common` (captions, notes, small helpers).
"""
