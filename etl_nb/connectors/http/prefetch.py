"""Fetch pages ahead on a thread, so the network and JSON parsing overlap with DuckDB storing."""

from __future__ import annotations

import threading
from collections.abc import Generator
from queue import Full, Queue
from typing import Any, TypeVar

# Pages fetched ahead of the one DuckDB is storing.
PREFETCH = 2

T = TypeVar("T")


def prefetched(pages: Generator[T], *, name: str, depth: int = PREFETCH) -> Generator[T]:
    """``pages`` fetched by a thread that runs at most ``depth`` pages ahead.

    The next page downloads and parses while DuckDB stores this one (its C++
    side lets go of the GIL), so fetching and storing overlap; the queue
    bounds memory to ``depth`` pages. An error in the thread is raised here,
    at the page where it happened; closing this generator stops the thread.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(("page", page)):
                    return
            put(("end", None))
        except BaseException as exc:
            put(("error", exc))
        finally:
            pages.close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
