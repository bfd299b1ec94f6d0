"""corrtrace.txmanager: a transaction manager that rolls back (or commits) every service a request touched.

Services register as participants of a correlation ID; a trigger (an alert, an operator) makes the manager call
each participant's signed rollback endpoint in reverse order, once, with retries, surviving restarts.
Heavy imports (FastAPI, boto3, Flask) load only with the names that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from corrtrace.txmanager.settings import TxManagerSettings, load_settings

if TYPE_CHECKING:
    from corrtrace.txmanager.app import create_app
    from corrtrace.txmanager.client import ParticipantClient, TxManagerClient, TxManagerError
    from corrtrace.txmanager.discovery import DiscoveredParticipant, LogDiscovery
    from corrtrace.txmanager.failures import FailureChannel, report_failure
    from corrtrace.txmanager.participant import Ledger, SqliteLedger, participant_blueprint, participant_router
    from corrtrace.txmanager.store import Store

_LAZY = {
    "create_app": "corrtrace.txmanager.app",
    "HmacAuth": "corrtrace.txmanager.client",
    "TxManagerClient": "corrtrace.txmanager.client",
    "ParticipantClient": "corrtrace.txmanager.client",
    "TxManagerError": "corrtrace.txmanager.client",
    "DiscoveredParticipant": "corrtrace.txmanager.discovery",
    "LogDiscovery": "corrtrace.txmanager.discovery",
    "Ledger": "corrtrace.txmanager.participant",
    "SqliteLedger": "corrtrace.txmanager.participant",
    "participant_blueprint": "corrtrace.txmanager.participant",
    "participant_router": "corrtrace.txmanager.participant",
    "Store": "corrtrace.txmanager.store",
    "FailureChannel": "corrtrace.txmanager.failures",
    "report_failure": "corrtrace.txmanager.failures",
}

__all__ = [
    "DiscoveredParticipant",
    "FailureChannel",
    "HmacAuth",
    "Ledger",
    "LogDiscovery",
    "ParticipantClient",
    "SqliteLedger",
    "Store",
    "TxManagerClient",
    "TxManagerError",
    "TxManagerSettings",
    "create_app",
    "load_settings",
    "participant_blueprint",
    "participant_router",
    "report_failure",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'corrtrace.txmanager' has no attribute {name!r}")
