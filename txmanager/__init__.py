"""corrtrace.txmanager package."""
