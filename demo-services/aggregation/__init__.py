"""The demo's aggregation service."""
