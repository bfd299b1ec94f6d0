"""The demo's shipping service."""
