"""The demo's catalog service."""
