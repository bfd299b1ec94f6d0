"""`corrtrace dashboards import` against a local server that checks Grafana's documented API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from corrtrace.dashboards import GrafanaClient, GrafanaError, build_all

from corrtrace.cli import main
from tests.dashboards.fake_grafana import FakeGrafana

TOKEN = "glsa_editor"


@pytest.fixture()
def grafana(free_port: Callable[[], int]) -> Iterator[FakeGrafana]:
    server = FakeGrafana(free_port())
    yield server
    server.close()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["dashboards", "import", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_import_creates_folder_then_posts_each_dashboard(grafana: FakeGrafana) -> None:
    code, out, err = run("--url", grafana.url, "--token", TOKEN, "--folder", "Observability", "--json")
    assert code == 0, err
    assert grafana.state.violations == []
    calls = [(r["method"], r["path"]) for r in grafana.state.requests]
    assert calls[:3] == [("GET", "/api/folders/observability"), ("GET", "/api/folders"), ("POST", "/api/folders")]
    assert calls[3:] == [("POST", "/api/dashboards/db")] * 3
    folder = grafana.state.requests[2]["body"]
    assert folder == {"uid": "observability", "title": "Observability"}
    expected = {d["uid"] for d in build_all()}
    for request in grafana.state.requests:
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    for request in grafana.state.requests[3:]:
        body = request["body"]
        assert set(body) == {"dashboard", "folderUid", "overwrite", "message"}
        assert body["folderUid"] == "observability" and body["overwrite"] is False
        assert body["message"] == "corrtrace dashboards import"
        assert body["dashboard"]["id"] is None
        assert "application/json" in request["headers"]["Content-Type"]
    assert set(grafana.state.dashboards) == expected
    printed = json.loads(out)
    assert {i["uid"] for i in printed["imported"]} == expected
    assert all(i["url"].startswith(f"{grafana.url}/d/") and i["version"] == 1 for i in printed["imported"])
    assert TOKEN not in out + err


def test_existing_folder_is_reused_and_overwrite_bumps_versions(grafana: FakeGrafana) -> None:
    assert run("--url", grafana.url, "--token", TOKEN, "--folder", "Observability")[0] == 0
    before = len(grafana.state.requests)
    code, out, err = run("--url", grafana.url, "--token", TOKEN, "--folder", "Observability", "--overwrite")
    assert code == 0, err
    again = [(r["method"], r["path"]) for r in grafana.state.requests[before:]]
    assert again[0] == ("GET", "/api/folders/observability") and ("POST", "/api/folders") not in again
    assert all(r["body"]["overwrite"] is True for r in grafana.state.requests[before + 1 :])
    assert {d["version"] for d in grafana.state.dashboards.values()} == {2}
    assert "(version 2)" in out


def test_reimport_without_overwrite_is_a_412_that_says_overwrite(grafana: FakeGrafana) -> None:
    assert run("--url", grafana.url, "--token", TOKEN)[0] == 0
    code, _, err = run("--url", grafana.url, "--token", TOKEN)
    assert code == 1
    assert "412 Precondition Failed (version-mismatch)" in err and "rerun with --overwrite" in err
    assert grafana.state.violations == []


def test_same_title_other_uid_is_name_exists(grafana: FakeGrafana) -> None:
    board = build_all()[0]
    with GrafanaClient(grafana.url, TOKEN) as client:
        client.import_dashboard(board)
        with pytest.raises(GrafanaError, match=r"412 Precondition Failed \(name-exists\).*--overwrite"):
            client.import_dashboard({**board, "uid": "copy-of-flow"})
        # sending the version Grafana holds updates without --overwrite (idempotent CI without clobbering)
        assert client.import_dashboard({**board, "version": 1}).version == 2


def test_401_bad_token_is_explained(grafana: FakeGrafana) -> None:
    code, out, err = run("--url", grafana.url, "--token", "glsa_wrong")
    assert code == 1
    assert "rejected the token (401 Unauthorized)" in err and "service-account token" in err
    assert "glsa_wrong" not in out + err


def test_403_viewer_token_is_explained(grafana: FakeGrafana) -> None:
    code, _, err = run("--url", grafana.url, "--token", "glsa_viewer", "--folder", "")
    assert code == 1
    assert "403 Forbidden" in err and "Editor role" in err
    assert [r["path"] for r in grafana.state.requests] == ["/api/dashboards/db"]  # no folder call for the root


def test_403_on_folder_creation_names_the_permission(grafana: FakeGrafana) -> None:
    code, _, err = run("--url", grafana.url, "--token", "glsa_viewer", "--folder", "Observability")
    assert code == 1 and "folder 'Observability'" in err and "403 Forbidden" in err and "folders:create" in err
    assert ("POST", "/api/dashboards/db") not in [(r["method"], r["path"]) for r in grafana.state.requests]


def test_5xx_is_retried_then_succeeds(grafana: FakeGrafana) -> None:
    grafana.state.fail_next = [503, 502]
    slept: list[float] = []
    with GrafanaClient(grafana.url, TOKEN, retries=3, backoff=0.01, sleep=slept.append) as client:
        result = client.import_dashboard(build_all()[0], overwrite=True)
    assert result.status == "success" and result.version == 1
    assert len(slept) == 2 and 0.005 <= slept[0] <= 0.01 and 0.01 <= slept[1] <= 0.02  # doubling, with jitter
    assert [r["path"] for r in grafana.state.requests] == ["/api/dashboards/db"] * 3


def test_5xx_forever_gives_up_with_a_clear_message(grafana: FakeGrafana) -> None:
    grafana.state.fail_next = [500] * 10
    client = GrafanaClient(grafana.url, TOKEN, retries=2, backoff=0.0, sleep=lambda s: None)
    with client, pytest.raises(GrafanaError) as info:
        client.import_dashboard(build_all()[0])
    assert info.value.status == 500
    assert "answered 500" in str(info.value) and "3 times" in str(info.value)
    assert len(grafana.state.requests) == 3


def test_unreachable_grafana_exits_1_with_advice(free_port: Callable[[], int]) -> None:
    code, _, err = run("--url", f"http://127.0.0.1:{free_port()}", "--token", TOKEN, "--retries", "0")
    assert code == 1 and "cannot reach Grafana" in err and "--url" in err


def test_import_of_user_files_and_env_token(grafana: FakeGrafana, tmp_path, monkeypatch) -> None:
    board = {"uid": "user-board", "title": "Mine", "schemaVersion": 42, "panels": []}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"dashboard": board, "meta": {}}))
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    code, _, err = run("--url", grafana.url, "--folder", "", "--message", "from CI", str(path))
    assert code == 0, err
    sent = grafana.state.requests[-1]["body"]
    assert sent["message"] == "from CI" and "folderUid" not in sent and sent["dashboard"]["title"] == "Mine"
    assert grafana.state.violations == []


def test_retry_after_a_lost_answer_recognises_its_own_landed_dashboard(grafana: FakeGrafana) -> None:
    """Grafana stored the dashboard but a proxy answered 502: the retry gets a 412, then the client
    reads the stored dashboard back, sees it is exactly what it sent, and reports success."""
    grafana.state.lose_answer_next = 1
    board = build_all()[0]
    with GrafanaClient(grafana.url, TOKEN, retries=2, backoff=0.0, sleep=lambda s: None) as client:
        result = client.import_dashboard(board)
    assert result.status == "success" and result.uid == board["uid"] and result.version == 1
    calls = [(r["method"], r["path"]) for r in grafana.state.requests]
    assert calls == [
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
        ("GET", f"/api/dashboards/uid/{board['uid']}"),
    ]
    # someone else's dashboard under that uid is still a conflict
    other = {**board, "title": "someone else's"}
    grafana.state.dashboards[board["uid"]]["dashboard"] = other
    grafana.state.lose_answer_next = 1
    with (
        GrafanaClient(grafana.url, TOKEN, retries=2, backoff=0.0, sleep=lambda s: None) as client,
        pytest.raises(GrafanaError, match="version-mismatch"),
    ):
        client.import_dashboard(board)


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("version-mismatch", "another version of this dashboard"),
        ("plugin-dashboard", "belongs to a plugin"),
    ],
)
def test_other_412_reasons_are_explained(grafana: FakeGrafana, status: str, advice: str) -> None:
    grafana.state.fail_next = [(412, {"status": status, "message": "x"})]
    code, _, err = run("--url", grafana.url, "--token", TOKEN, "--folder", "")
    assert code == 1 and f"412 Precondition Failed ({status})" in err and advice in err


def test_stale_version_is_a_version_mismatch(grafana: FakeGrafana) -> None:
    board = {**build_all()[0], "version": 0}
    with GrafanaClient(grafana.url, TOKEN) as client:
        client.import_dashboard(board)
        client.import_dashboard(board, overwrite=True)  # now version 2 in Grafana
        with pytest.raises(GrafanaError, match=r"version-mismatch.*--overwrite") as info:
            client.import_dashboard({**board, "version": 1})
    assert info.value.status == 412


def test_bad_input_exits_2(grafana: FakeGrafana, tmp_path) -> None:
    assert run("--url", grafana.url, "--token", "")[0] == 2
    garbage = tmp_path / "x.json"
    garbage.write_text("{")
    assert run("--url", grafana.url, "--token", TOKEN, str(garbage))[0] == 2
    assert grafana.state.requests == []


@pytest.mark.parametrize("url", ["ftp://x", "http://[::1", "http://127.0.0.1:99999", "grafana:3000"])
def test_a_url_that_is_no_http_url_is_a_usage_error_before_any_attempt(url: str) -> None:
    result = CliRunner().invoke(main, ["dashboards", "import", "--url", url, "--token", TOKEN])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--url'" in result.stderr and repr(url) in result.stderr
    assert "attempts" not in result.stderr and "Traceback" not in result.stderr
