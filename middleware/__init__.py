"""corrtrace.middleware package."""
