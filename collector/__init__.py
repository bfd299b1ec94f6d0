"""corrtrace.collector package."""
