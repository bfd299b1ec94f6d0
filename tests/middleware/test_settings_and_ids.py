"""Settings validation, the ID reader every adapter uses, and the core's fast UUIDv7 generator."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from corrtrace.middleware import CorrelationSettings

from corrtrace.ids import DEFAULT_POLICY, IdPolicy, IdReader, allowed_bytes
from corrtrace.ids import new_uuid7 as fast_uuid7


def test_fast_uuid7_is_a_valid_time_ordered_uuid7() -> None:
    before = time.time_ns() // 1_000_000
    ids = [fast_uuid7() for _ in range(50_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for value in ids[::997]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value
        assert before <= parsed.int >> 80 <= after
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # the time prefix never goes backwards


def test_reader_matches_the_core_policy() -> None:
    reader = IdReader(DEFAULT_POLICY)
    for raw in [b"ok-1", b"a" * 128, b"a" * 129, b"", b" x", b"x\n", b"caf\xc3\xa9", b"a:b.c_d-e", b"{}"]:
        text = raw.decode("latin-1")
        assert reader.valid_bytes(raw) == DEFAULT_POLICY.is_valid(text), raw
    assert allowed_bytes(r"[a-z]+") == b"abcdefghijklmnopqrstuvwxyz"
    assert allowed_bytes(r"(a|b)+") is None  # not a simple class: the regex path is used
    odd = IdReader(IdPolicy(allowed_pattern=r"(ab)+"))
    assert odd.valid_bytes(b"abab") and not odd.valid_bytes(b"aba")


def test_settings_reject_header_names_that_could_inject() -> None:
    for bad in ["X-Id\r\nSet-Cookie: a=b", "", "X Id", "X-Id:"]:
        with pytest.raises(ValueError, match="plain ASCII header name"):
            CorrelationSettings(header_name=bad)
    with pytest.raises(TypeError, match="tuple of names"):
        CorrelationSettings(fallback_headers="X-Request-ID")  # type: ignore[arg-type]
    settings = CorrelationSettings(header_name="X-Req", service_map={"10.0.0.5:8080": "inventory"})
    assert settings.header_bytes == b"x-req" and settings.wsgi_key == "HTTP_X_REQ"
    assert settings.target_name("10.0.0.5", 8080) == "inventory" and settings.target_name("db", 5432) == "db"


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        ({"access_log": "false"}, TypeError, "access_log must be True or False, got 'false'"),
        ({"tracing": 1}, TypeError, "tracing must be True or False"),
        ({"header_name": 5}, TypeError, "header_name must hold header names"),
        ({"fallback_headers": ("X-Request-ID", None)}, TypeError, "fallback_headers must hold header names"),
        ({"fallback_headers": ("X-Id\r\nSet-Cookie: a=b",)}, ValueError, "fallback_headers must be a plain ASCII"),
        ({"skip_paths": ["/health", 5]}, TypeError, "skip_paths must hold strings"),
    ],
)
def test_settings_of_the_wrong_type_are_one_clear_error(given: dict[str, Any], error: type, message: str) -> None:
    """``access_log=os.environ.get("ACCESS_LOG", "false")`` used to switch access lines ON (a non-empty string is
    true); a number as a header name or a path failed later with an AttributeError inside the middleware."""
    with pytest.raises(error, match=re.escape(message)):
        CorrelationSettings(**given)


def test_forked_workers_never_reuse_the_parents_random_pool() -> None:
    import os

    fast_uuid7()  # fill this thread's pool, as a pre-fork server master would
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ID and leave without running pytest's teardown
        os.write(write, fast_uuid7().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    parent = fast_uuid7()
    assert child[14:] != parent[14:]  # the random part (everything after the time and version)


def test_threads_draw_distinct_ids() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [fast_uuid7() for _ in range(2000)], range(8)))
    flat = [i for batch in batches for i in batch]
    assert len(set(flat)) == len(flat)


def test_settings_behave_like_a_frozen_dataclass() -> None:
    base = CorrelationSettings(skip_paths=["/healthz"])  # type: ignore[arg-type]
    assert base.skip_paths == ("/healthz",) and base == CorrelationSettings(skip_paths=("/healthz",))
    changed = base.replace(header_name="X-Req", access_log=False)
    assert (changed.header_name, changed.access_log, changed.skip_paths) == ("X-Req", False, ("/healthz",))
    assert base.header_name == "X-Correlation-ID" and changed != base
    assert "header_name='X-Req'" in repr(changed)
    with pytest.raises(AttributeError, match="immutable"):
        base.tracing = True  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field 'colour'"):
        base.replace(colour="red")
    with pytest.raises(TypeError):
        CorrelationSettings(colour="red")  # type: ignore[call-arg]
    assert CorrelationSettings().service_map == {} and CorrelationSettings().service_map is not base.service_map
