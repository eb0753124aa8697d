"""A process pool with a hard per-item timeout that fires from any thread.

Each worker is a spawned process with its own pipe. The parent sends a worker a chunk of items;
the worker answers item by item, and the parent restarts an item's clock at every answer. When an
item runs past ``timeout_s`` the parent kills that worker (SIGKILL: no cooperation needed, no
signals in the caller), records the item as timed out, puts the rest of the chunk back in the
queue and promotes a pre-started spare worker, so one pathological input costs one timeout, not a
restart. Nothing here uses ``signal.alarm``: ``map`` works from worker threads.
"""
from __future__ import annotations

import collections
import multiprocessing as mp
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Callable, Optional, Sequence

OK, TIMEOUT, ERROR = "ok", "timeout", "error"


class WorkerStartError(RuntimeError):
    pass


def _worker_main(conn, initializer, init_args, handler_name):
    """Worker loop: ``initializer(*init_args)`` returns a handler ``item -> result``."""
    try:
        handler = initializer(*init_args)
        conn.send(("ready", None, None))
    except BaseException as exc:  # report and exit: the parent raises WorkerStartError
        conn.send(("init_error", None, f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        for idx, item in msg:
            try:
                conn.send((OK, idx, handler(item)))
            except BaseException as exc:  # one bad item must not end the worker
                conn.send((ERROR, idx, f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx, initializer, init_args):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, initializer, init_args, None), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.queue: collections.deque = collections.deque()  # (idx, item) sent, not answered
        self.clock = 0.0

    def kill(self):
        try:
            self.proc.kill()
        except Exception:
            pass
        self.proc.join(timeout=5)
        self.conn.close()


class HardTimeoutPool:
    """``map(items)`` -> list of (status, value) with status ok | timeout | error."""

    def __init__(self, initializer: Callable, init_args: tuple = (), num_workers: int = 2,
                 timeout_s: float = 10.0, spares: int = 1, start_method: str = "spawn",
                 startup_timeout_s: float = 180.0):
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1 (use in-process scoring for 0)")
        self.timeout_s = float(timeout_s)
        self.num_workers = num_workers
        self.spares = max(0, spares)
        self.startup_timeout_s = startup_timeout_s
        self._ctx = mp.get_context(start_method)
        self._init = (initializer, init_args)
        self._lock = threading.Lock()  # map() is not re-entrant: concurrent callers queue up
        self._active: list[_Worker] = [self._spawn() for _ in range(num_workers)]
        self._spare: list[_Worker] = [self._spawn() for _ in range(self.spares)]
        self.restarts = 0
        self._closed = False

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, *self._init)

    def _handle_startup_msg(self, w: _Worker, msg) -> None:
        kind, _, info = msg
        if kind == "ready":
            w.ready = True
        elif kind == "init_error":
            raise WorkerStartError(f"reward worker failed to start: {info}")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while not all(w.ready for w in self._active):
            waiting = {w.conn: w for w in self._active + self._spare if not w.ready}
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerStartError(f"reward workers not ready after {self.startup_timeout_s:.0f}s")
            for conn in wait(list(waiting), timeout=left):
                w = waiting[conn]
                try:
                    self._handle_startup_msg(w, conn.recv())
                except (EOFError, OSError):
                    raise WorkerStartError("reward worker exited during start-up "
                                           f"(exit code {w.proc.exitcode})")

    def _replace(self, w: _Worker) -> _Worker:
        """Kill ``w`` and put a spare (or a fresh worker) in its place."""
        w.kill()
        self.restarts += 1
        self._spare.append(self._spawn())
        new = self._spare.pop(0)
        self._active[self._active.index(w)] = new
        return new

    def map(self, items: Sequence[Any], chunk_size: Optional[int] = None) -> list:
        if self._closed:
            raise RuntimeError("pool is closed")
        with self._lock:
            return self._map(items, chunk_size)

    def _map(self, items, chunk_size):
        n = len(items)
        results: list = [None] * n
        if n == 0:
            return results
        if chunk_size is None:
            chunk_size = max(1, min(32, -(-n // (self.num_workers * 4))))
        todo = collections.deque(enumerate(items))
        remaining = n
        while remaining:
            now = time.monotonic()
            for w in self._active:
                if w.ready and not w.queue and todo:
                    chunk = [todo.popleft() for _ in range(min(chunk_size, len(todo)))]
                    w.queue.extend(chunk)
                    w.clock = now
                    w.conn.send(chunk)
            busy = [w for w in self._active if w.queue]
            deadlines = [w.clock + self.timeout_s for w in busy]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else 1.0
            conns = {w.conn: w for w in self._active + self._spare}
            for conn in wait(list(conns), timeout=wait_s):
                w = conns[conn]
                try:
                    while conn.poll():
                        msg = conn.recv()
                        if msg[0] in ("ready", "init_error"):
                            self._handle_startup_msg(w, msg)
                            continue
                        status, idx, value = msg
                        if w.queue and w.queue[0][0] == idx:
                            w.queue.popleft()
                            results[idx] = (status, value)
                            remaining -= 1
                            w.clock = time.monotonic()
                except (EOFError, OSError):
                    # The worker died (e.g. out of memory): its current item is an error.
                    if w in self._active:
                        if w.queue:
                            idx, _ = w.queue.popleft()
                            results[idx] = (ERROR, f"worker died (exit code {w.proc.exitcode})")
                            remaining -= 1
                            todo.extendleft(reversed(w.queue))
                            w.queue.clear()
                        self._replace(w)
                    else:
                        self._spare.remove(w)
                        w.kill()
                        self._spare.append(self._spawn())
            now = time.monotonic()
            for w in list(self._active):
                if w.queue and now - w.clock > self.timeout_s:
                    idx, _ = w.queue.popleft()
                    results[idx] = (TIMEOUT, None)
                    remaining -= 1
                    todo.extendleft(reversed(w.queue))
                    w.queue.clear()
                    self._replace(w)
        return results

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self._active + self._spare:
            try:
                w.conn.send(None)
            except Exception:
                pass
        for w in self._active + self._spare:
            w.proc.join(timeout=2)
            if w.proc.is_alive():
                w.kill()
            else:
                w.conn.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
