"""Bad configuration and hostile arguments, command by command: each ends in one clear line on stderr and the
exit code of its kind (2 for a setting or an argument), never a Python traceback (issue 10, §6 and "the next
ones"). The collector's index template against the REAL Elasticsearch and OpenSearch nodes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corrtrace.collector import connect, ensure_index_template

from corrtrace.config import ConfigError


def _corrtrace(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what a user sees, logging set up as in production."""
    return subprocess.run(
        [sys.executable, "-m", "corrtrace.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _one_clear_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The ``corrtrace <command>: ...`` error line; no traceback anywhere in the output or the JSON log."""
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "stack_trace" not in out, out[-3000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith(f"corrtrace {command}: ")]
    assert lines, done.stderr[-3000:]
    return lines[0]


# -- the index template: another template over the same indices at the same priority --------------------------
@pytest.fixture(params=["elasticsearch", "opensearch"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Any]]:
    """(sink name, node URL, client) for each real node; every template and index under the test's prefix is
    removed afterwards."""
    name = request.param
    url = request.getfixturevalue("es_url" if name == "elasticsearch" else "os_url")
    client = connect(url, flavor=name, timeout=60.0)
    base = f"t-ov-{uuid.uuid4().hex[:8]}"
    try:
        yield name, url, (client, base)
    finally:
        for template in (base, f"{base}-next"):
            if name == "elasticsearch":
                client.options(ignore_status=404).indices.delete_index_template(name=template)
                client.options(ignore_status=404).indices.delete(index=f"{template}-*", expand_wildcards="all")
            else:
                client.indices.delete_index_template(name=template, ignore=404)
                client.indices.delete(index=f"{template}-*", params={"expand_wildcards": "all"}, ignore=404)
        client.close()


def test_an_overlapping_index_template_is_one_config_error_line(backend: Any, tmp_path: Path) -> None:
    """Prefix ``<p>-next`` under an existing ``<p>`` template (``<p>-*``, same priority): the server answers 400;
    ``collect`` says which two templates overlap and what to do, exit 2, and ships nothing to the wrong place."""
    name, url, (client, base) = backend
    ensure_index_template(client, base)  # another collector's template, <base>-*
    (tmp_path / "app.log").write_text('{"correlation_id":"ov-1","message":"m"}\n')
    (tmp_path / "c.yaml").write_text(
        f"collector:\n  sinks: [{name}]\n  es_url: {url}\n  index_prefix: {base}-next\n  backoff_max: 1\n"
    )
    done = _corrtrace("collect", "--once", "--config", "c.yaml", "--data-dir", "d", "app.log", cwd=tmp_path)
    line = _one_clear_line(done, "collect")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"'{base}-next' (indices {base}-next-*)" in line and f"'{base}' ({base}-*)" in line, line
    assert "index_prefix" in line and f"delete template '{base}'" in line, line


def test_the_broader_prefix_installed_second_names_the_narrower_template(backend: Any) -> None:
    """The other order: ``<p>-next`` exists and ``<p>`` (whose ``<p>-*`` covers it) is installed: same error."""
    _, _, (client, base) = backend
    ensure_index_template(client, f"{base}-next")
    with pytest.raises(ConfigError, match=rf"existing template '{base}-next' \({base}-next-\*\)"):
        ensure_index_template(client, base)
