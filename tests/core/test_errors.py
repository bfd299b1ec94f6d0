"""One exception tree (corrtrace/errors.py): a caller catches ``CorrtraceError`` for anything raised on purpose,
and each class keeps the built-in base callers already catch (``ValueError`` for bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from corrtrace.alerts.definitions import AlertDefinitionError
from corrtrace.alerts.patterns import PatternError, parse
from corrtrace.collector.checkpoint import Checkpoint, StateError
from corrtrace.collector.parsers import FormatError
from corrtrace.dashboards.grafana_api import GrafanaError
from corrtrace.txmanager.client import TxManagerError
from corrtrace.txmanager.failures import MalformedRecord
from corrtrace.txmanager.store import ConflictError, StoreError

from corrtrace.config import ConfigError
from corrtrace.errors import CorrtraceError, DeliveryError, InvalidInput, PermanentError, TransientError
from corrtrace.signing import SignatureError


@pytest.mark.parametrize("cls", [ConfigError, FormatError, PatternError, AlertDefinitionError, MalformedRecord])
def test_bad_input_is_one_branch_and_still_a_value_error(cls: type[Exception]) -> None:
    assert issubclass(cls, InvalidInput) and issubclass(cls, ValueError) and issubclass(cls, CorrtraceError)


@pytest.mark.parametrize(
    "cls",
    [
        StateError,
        TransientError,
        PermanentError,
        SignatureError,
        TxManagerError,
        ConflictError,
        StoreError,
        GrafanaError,
    ],
)
def test_every_other_error_has_the_same_root(cls: type[Exception]) -> None:
    assert issubclass(cls, CorrtraceError)
    assert issubclass(TransientError, DeliveryError) and issubclass(PermanentError, DeliveryError)


def test_a_raised_error_is_caught_at_the_root(tmp_path: Path) -> None:
    with pytest.raises(CorrtraceError, match="position"):
        parse("{ $.a = ")
    (tmp_path / "checkpoint.json").write_text("[]")
    with pytest.raises(CorrtraceError, match="corrupt"):
        Checkpoint(tmp_path / "checkpoint.json")
