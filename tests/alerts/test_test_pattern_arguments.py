"""``corrtrace alerts test-pattern PATTERN EVENT...``: the positional form the README shows, as well as -p/--event."""

from __future__ import annotations

import json

from click.testing import CliRunner

from corrtrace.cli import main


def matches(args: list[str]) -> list[int]:
    result = CliRunner().invoke(main, ["alerts", "test-pattern", "--json", *args])
    assert result.exit_code == 0, result.output
    return [m["eventNumber"] for m in json.loads(result.stdout)["matches"]]


def test_pattern_and_events_as_arguments() -> None:
    assert matches(['{ $.level = "ERROR" }', '{"level": "ERROR"}', '{"level": "INFO"}', '{"level": "ERROR"}']) == [0, 2]


def test_option_form_and_mixed_forms() -> None:
    assert matches(["-p", "ERROR", "--event", "ERROR a", "INFO b"]) == [0]  # arguments after -p are events
    assert matches(["ERROR", "--event", "ERROR a", "ERROR b"]) == [0, 1]


def test_missing_pattern_or_events_is_one_line_exit_2() -> None:
    for args in ([], ["ERROR"]):
        result = CliRunner().invoke(main, ["alerts", "test-pattern", *args])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
