"""The correlation ID follows each unit of work and never leaks into another's log lines."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

import corrtrace
from corrtrace import context
from corrtrace.logging import configure


@pytest.fixture()
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = configure("svc", stream=buffer, logger="isolation")
    yield buffer
    logging.getLogger("isolation").removeHandler(handler)


def _lines(buffer: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_threads_executor_and_tasks_keep_their_own_ids(log_lines: io.StringIO) -> None:
    log = logging.getLogger("isolation")
    barrier = threading.Barrier(3)

    def work(tag: str) -> None:
        barrier.wait(timeout=5)  # all three threads log at the same time
        for i in range(50):
            log.info("step", extra={"tag": tag, "i": i})

    with corrtrace.bind_correlation_id("thread-a"):
        a = context.CorrelatedThread(target=work, args=("thread-a",))
    with corrtrace.bind_correlation_id("thread-b"):
        b = context.CorrelatedThread(target=work, args=("thread-b",))
    with ThreadPoolExecutor(1) as plain, context.CorrelatedThreadPoolExecutor(2) as pool:
        with corrtrace.bind_correlation_id("executor-job"):
            job = pool.submit(work, "executor-job")
        a.start()
        b.start()
        a.join()
        b.join()
        job.result(timeout=10)
        # a plain executor would not see the id: the carrier is what makes the difference
        with corrtrace.bind_correlation_id("not-carried"):
            assert plain.submit(corrtrace.get_correlation_id).result() is None

    async def task(tag: str) -> None:
        for i in range(50):
            log.info("step", extra={"tag": tag, "i": i})
            await asyncio.sleep(0)

    async def run_in_loop() -> None:
        loop = asyncio.get_running_loop()
        tasks = [context.create_task(task(f"task-{n}"), correlation_id=f"task-{n}") for n in range(3)]
        with corrtrace.bind_correlation_id("in-executor"):
            executor_result = await context.run_in_executor(loop, None, corrtrace.get_correlation_id)
            blocked_result = await loop.run_in_executor(None, corrtrace.get_correlation_id)
        await asyncio.gather(*tasks)
        assert executor_result == "in-executor"
        assert blocked_result is None  # what the anchors lose: plain run_in_executor drops the context

    asyncio.run(run_in_loop())

    lines = _lines(log_lines)
    assert len(lines) == 6 * 50
    by_tag: dict[str, int] = {}
    for line in lines:
        assert line["correlation_id"] == line["tag"], line
        by_tag[line["tag"]] = by_tag.get(line["tag"], 0) + 1
    assert by_tag == {t: 50 for t in ["thread-a", "thread-b", "executor-job", "task-0", "task-1", "task-2"]}


def test_bind_resets_on_exit_even_after_an_exception() -> None:
    assert corrtrace.get_correlation_id() is None
    with pytest.raises(RuntimeError), corrtrace.bind_correlation_id("abc"):
        assert corrtrace.get_correlation_id() == "abc"
        raise RuntimeError
    assert corrtrace.get_correlation_id() is None
    with corrtrace.bind_correlation_id() as generated:
        assert corrtrace.get_correlation_id() == generated


def test_wrap_carries_the_context_into_a_plain_thread() -> None:
    seen: list[str | None] = []
    with corrtrace.bind_correlation_id("wrapped"):
        target = context.wrap(lambda: seen.append(corrtrace.get_correlation_id()))
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    assert seen == ["wrapped"]
