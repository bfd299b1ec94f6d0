"""The demo's checkout service."""
