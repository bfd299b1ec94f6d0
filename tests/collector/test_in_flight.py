"""Issue 13 §2: several batches in flight at once, the checkpoint still in order; no disk spill while the sink
keeps up (collector/README.md, "Throughput")."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
from corrtrace.collector import ElasticsearchSink, Pipeline
from corrtrace.collector.pipeline import Batch, BatchQueue
from corrtrace.collector.sources.tail import FileTail
from elasticsearch import Elasticsearch

from tests.collector.esutil import exactly_once, stored
from tests.collector.faultproxy import FaultProxy
from tests.collector.helpers import write_lines


def _offset(checkpoint: Path) -> int:
    if not checkpoint.exists():
        return 0
    return max((v["offset"] for v in orjson.loads(checkpoint.read_bytes())["sources"].values()), default=0)


def test_two_bulks_in_flight_and_the_checkpoint_waits_for_the_first(
    es: Any, es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    """The first batch's bulk is held until another one has been answered: with ``workers: 2`` the next batch
    is sent meanwhile, and the checkpoint does not move until the first batch is stored."""
    total = 3_000
    log = tmp_path / "app.log"
    write_lines(log, range(total))
    data = tmp_path / "data"
    other_done = threading.Event()
    seen: dict[str, Any] = {}

    def hook(proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        if "_bulk" not in path:
            return None
        if b'-0"}}' not in body:  # not the first batch (the one holding the line at offset 0)
            answer = proxy.forward(method, path, headers, body)
            other_done.set()
            return answer
        seen["overlap"] = other_done.wait(20)
        time.sleep(0.3)  # time for a (wrong) commit of the later batch to land
        seen["offset_while_first_held"] = _offset(data / "checkpoint.json")
        return None

    with FaultProxy(es_url, hook) as proxy:
        sink = ElasticsearchSink(Elasticsearch(proxy.url, request_timeout=60), prefix=index_prefix)
        pipeline = Pipeline([], [sink], data_dir=data, once=True, batch_max_events=1_000, workers=2)
        pipeline.sources.append(FileTail([str(log)], pipeline.checkpoint))
        pipeline.run()
    assert seen["overlap"], "the second bulk was not sent while the first was in flight"
    assert seen["offset_while_first_held"] == 0
    assert _offset(data / "checkpoint.json") == log.stat().st_size
    exactly_once(stored(es, index_prefix), total)


def test_a_busy_sink_makes_the_reader_wait_a_failing_one_makes_it_spill(tmp_path: Path) -> None:
    failing = threading.Event()
    queue = BatchQueue(tmp_path / "buffer", memory_batches=1, stall_seconds=600, failing=failing.is_set)
    stop = threading.Event()
    batches = [Batch([], {"a": i}) for i in range(4)]
    assert queue.put(batches[0], stop)
    assert queue.get(0.1) is batches[0]  # the shipper takes one: it is keeping up
    assert queue.put(batches[1], stop)
    waiting = threading.Thread(target=queue.put, args=(batches[2], stop))
    waiting.start()
    time.sleep(0.2)
    assert waiting.is_alive() and len(queue.disk) == 0  # waits for the shipper instead of spilling
    assert queue.get(0.1) is batches[1]
    waiting.join(5)
    assert not waiting.is_alive() and len(queue.disk) == 0
    failing.set()  # a sink fails its requests: an outage, spill
    assert queue.put(batches[3], stop)
    assert len(queue.disk) == 1
    assert [queue.get(0.1).offsets["a"] for _ in range(2)] == [2, 3]  # type: ignore[union-attr]
    queue.disk.close()


def test_after_an_outage_the_reader_waits_again_instead_of_spilling_the_rest_of_the_run(tmp_path: Path) -> None:
    """Once the sink works again, new batches wait for the shipper to drain what was spilled; they used to go to
    disk too (encoded, written, read and decoded once more) for as long as the spill had anything in it, which on
    a backlog is the rest of the run."""
    failing = threading.Event()
    queue = BatchQueue(tmp_path / "buffer", memory_batches=1, stall_seconds=600, failing=failing.is_set)
    stop = threading.Event()
    batches = [Batch([], {"a": i}) for i in range(5)]
    failing.set()  # an outage: what the reader brings is spilled
    for batch in batches[:3]:
        assert queue.put(batch, stop)
    assert len(queue.disk) == 2  # one in memory, two on disk
    failing.clear()  # the sink answers again: the shipper takes the oldest batch
    assert queue.get(0.1).offsets["a"] == 0  # type: ignore[union-attr]
    waiting = threading.Thread(target=queue.put, args=(batches[3], stop))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and len(queue.disk) == 2  # waits: nothing more is spilled
    taken = [queue.get(0.1).offsets["a"] for _ in range(2)]  # type: ignore[union-attr]
    waiting.join(5)
    assert not waiting.is_alive() and len(queue.disk) == 0  # the spill drained, the batch went to memory
    taken.append(queue.get(0.1).offsets["a"])  # type: ignore[union-attr]
    assert queue.put(batches[4], stop) and len(queue.disk) == 0
    taken.append(queue.get(0.1).offsets["a"])  # type: ignore[union-attr]
    assert taken == [1, 2, 3, 4]  # FIFO throughout
    queue.disk.close()
