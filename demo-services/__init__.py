"""corrtrace.demo package."""
