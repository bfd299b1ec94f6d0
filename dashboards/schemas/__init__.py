"""Vendored copies of grafana-foundation-sdk's draft-07 JSON Schemas (Apache-2.0, see LICENSE here).

Source: github.com/grafana/grafana-foundation-sdk, folder ``jsonschema/``, branch ``main``, commit
f178d5a42a8915fdda9235e97ad93881e3f94fef (2026-06-16); unmodified (``SHA256SUMS`` here, a test checks it).
Kept inside the package so ``corrtrace dashboards validate`` works from an installed wheel.
"""
