"""The demo's ui service."""
