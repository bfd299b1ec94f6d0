"""corrtrace: one correlation ID per request, in every log line, across every service it touches."""

from corrtrace.context import bind_correlation_id, get_correlation_id
from corrtrace.ids import new_uuid7 as new_correlation_id

__version__ = "0.1.0"
__all__ = ["__version__", "bind_correlation_id", "get_correlation_id", "new_correlation_id"]
