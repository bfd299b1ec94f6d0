"""The pipeline's contracts with sources and sinks: each side owns its rules (collector/README.md, "Contracts")."""

from __future__ import annotations

from pathlib import Path

from corrtrace.collector import Backoff, CloudWatchSink, CwLimits, EmbeddedStore, Pipeline, SearchQuery, ship_files
from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.sinks.cloudwatch import logs_client
from corrtrace.collector.sources.base import RawLine

from tests.collector.helpers import line, write_lines


class _Lines:
    """A source of fixed lines under one identity; ``resumable`` says whether its offsets mean anything later."""

    fmt = None

    def __init__(self, identity: str, lines: list[bytes], *, resumable: bool) -> None:
        self.identity = identity
        self.resumable = resumable
        self._pending: list[RawLine] = []
        offset = 0
        for text in lines:
            self._pending.append((identity, offset, offset + len(text), text.rstrip(b"\n")))
            offset += len(text)

    def read(self, max_lines: int, max_bytes: int, final: bool = False) -> list[RawLine]:
        out, self._pending = self._pending[:max_lines], self._pending[max_lines:]
        return out

    def at_eof(self) -> bool:
        return not self._pending

    def paths(self) -> dict[str, str]:
        return {}

    def identities(self) -> dict[str, tuple[int, int]]:
        return {}

    def unresumable(self) -> set[str]:
        return set() if self.resumable else {self.identity}

    def close(self) -> None:
        pass


def test_a_source_decides_which_of_its_identities_are_checkpointed(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    pipe = _Lines("pipe-1", [line(i, cid="c-pipe") for i in range(5)], resumable=False)
    spool = _Lines("spool-1", [line(i, cid="c-spool") for i in range(5)], resumable=True)
    pipeline = Pipeline([pipe, spool], [store], data_dir=tmp_path / "data", once=True)
    pipeline.run()
    saved = Checkpoint(tmp_path / "data" / "checkpoint.json")
    assert saved.offset("pipe-1") is None  # the pipeline knows no spelling of ids: the source said so
    assert saved.offset("spool-1") == sum(len(line(i, cid="c-spool")) for i in range(5))
    assert len(store.search(SearchQuery("c-pipe"))) == 5 and len(store.search(SearchQuery("c-spool"))) == 5


def test_batches_fill_the_requests_of_the_sink_that_declares_them(moto_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(1500), pad=300)  # ~0.7 MB
    limits = CwLimits(max_batch_bytes=64 << 10)
    sink = CloudWatchSink(logs_client(moto_url), limits=limits, backoff=Backoff(0.02, 0.3))
    ship_files([path], [sink], batch_max_bytes=100 << 10)  # room for 1.5 of the sink's calls per batch
    assert len(sink.fills) >= 10
    assert min(sink.fills[:-1]) > 0.95  # every call but the last full: batches cut at the sink's 64 KiB
