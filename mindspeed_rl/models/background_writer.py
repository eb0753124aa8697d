"""Overlap producing shards (reads, copies) with writing them (file writes, CRCs) on one thread.

Both sides spend their time in calls that release the GIL, so a single writer thread roughly
hides one behind the other. Pending work is bounded in bytes so memory stays near one shard.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable


class BackgroundWriter:
    def __init__(self, max_pending_bytes: int = 48 * 2**20):
        self.max_pending = max_pending_bytes
        self._jobs: deque = deque()
        self._pending = 0
        self._error: BaseException | None = None
        self._closed = False
        self._skip = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ckpt-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if not self._jobs:
                    return
                fn, args, nbytes = self._jobs[0]
            try:
                if self._error is None and not self._skip:
                    fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                self._error = exc
            with self._cv:
                self._jobs.popleft()
                self._pending -= nbytes
                self._cv.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, fn: Callable[..., Any], *args: Any, nbytes: int = 0) -> None:
        """Queue ``fn(*args)``; blocks while more than ``max_pending_bytes`` are queued."""
        with self._cv:
            while self._jobs and self._pending + nbytes > self.max_pending and self._error is None:
                self._cv.wait()
            self._raise()
            self._jobs.append((fn, args, nbytes))
            self._pending += nbytes
            self._cv.notify_all()

    def drain(self) -> None:
        """Wait until every queued job has run; re-raise the first error."""
        with self._cv:
            while self._jobs:
                self._cv.wait()
        self._raise()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is not None:
            with self._cv:  # the output is being thrown away: skip what is still queued
                self._skip = True
        self.close()
        if exc_type is None:
            self._raise()
