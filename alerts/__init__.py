"""corrtrace.alerts package."""
