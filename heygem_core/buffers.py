"""Bounded buffers between threads: `Prefetch` reads frames ahead and `WriteBehind` writes them behind,
so the decoder and the encoder (separate ffmpeg processes) keep working while frames are rendered."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()
PUT_POLL_S = 0.1  # how often a blocked producer checks whether the consumer has gone


class Prefetch(Generic[T]):
    """Iterate `source` in a thread, up to `depth` items ahead; errors surface in the consumer."""

    def __init__(self, source: Iterable[T], depth: int = 4) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(source),), daemon=True,
                                        name="heygem-prefetch")
        self._thread.start()

    def _run(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop reading ahead and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBehind(Generic[T]):
    """Hand items to `sink` in a thread, up to `depth` queued; a sink error is raised by the
    next `put()` or by `finish()`."""

    def __init__(self, sink: Callable[[T], None], depth: int = 4) -> None:
        self._sink = sink
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="heygem-write-behind")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._sink(item)  # type: ignore[arg-type]
                except BaseException as e:  # raised in the producer
                    self._error = e

    def put(self, item: T) -> None:
        """Queue one item (blocks while `depth` are waiting)."""
        self._raise()
        self._queue.put(item)

    def finish(self) -> None:
        """Wait until every queued item went to the sink; raise the sink's error if any."""
        self._queue.put(_END)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> WriteBehind[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:  # already failing: stop the thread, keep the first error
            self._queue.put(_END)
            self._thread.join()
