"""corrtrace.dashboards package."""
