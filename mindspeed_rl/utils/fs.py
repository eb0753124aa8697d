"""Small file-system helpers every tool shares: files and directories written atomically (a
reader sees the old version or the new one, never half of one), the checkpoint tracker file, JSON
that names its file, clean-up that never hides the real error, output directories checked before
work starts, and stale temp files of killed runs found and removed."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, List, Optional

# Megatron's name for the file that says which iter_NNNNNNN directory is the newest finished one.
TRACKER_FILE = "latest_checkpointed_iteration.txt"


class FileFormatError(ValueError):
    """A file exists but cannot be read as what it should be; the message names the file."""


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """``json.load`` that names the file, line and column of a syntax error or a non-UTF-8 byte."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FileFormatError(f"{path}:{line}: the {what} is not UTF-8 (byte 0x{raw[exc.start]:02x}); "
                              "re-save it as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}:{exc.lineno}:{exc.colno}: the {what} is not valid JSON ({exc.msg}); "
                              "fix or regenerate it") from None


def decode_utf8_line(raw: bytes, source: str, lineno: int) -> str:
    """One line's bytes as text, or a FileFormatError naming the line and the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{source}:{lineno}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                              "re-encode the file as UTF-8 or remove the line") from None


def remove_quietly(paths: Iterable[str | os.PathLike], log=None) -> List[str]:
    """Remove files or directories; a failure is reported (not raised), so clean-up after an error
    never replaces that error. Returns the paths that could not be removed."""
    left = []
    for p in paths:
        p = os.fspath(p)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.remove(p)
        except OSError as exc:
            left.append(p)
            (log or _warn)(f"warning: could not remove {p} ({exc.strerror or exc}); delete it by hand")
    return left


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_output_dir(path: str | os.PathLike, key: str) -> Optional[str]:
    """Why ``path`` cannot take outputs (None when it can). Creates it, as the run would, and writes
    and removes a probe file: permission bits alone miss read-only mounts and root."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{key}={str(path)!r} exists and is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{key}={str(path)!r} cannot be created ({exc.strerror or exc})"
    probe = path / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        return f"{key}={str(path)!r} is not writable ({exc.strerror or exc})"
    finally:
        remove_quietly([probe], log=lambda _m: None)
    return None


# .NAME.tmp-<pid> / .NAME.old-<pid>: converter and engine checkpoints; NAME.tmp<pid>_part / NAME.json.tmp<pid>:
# the preprocessor's temp files. The group is the writer's pid.
_STALE = (re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$"),
          re.compile(r"^(?P<name>.+)\.tmp(?P<pid>\d+)_(?:prompt|label)\.(?:bin|idx)$"),
          re.compile(r"^(?P<name>.+)\.tmp(?P<pid>\d+)_spec\.pkl$"),
          re.compile(r"^(?P<name>.+\.jsonl?)\.tmp(?P<pid>\d+)$"))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp_entries(parent: str | os.PathLike, name: Optional[str] = None) -> List[Path]:
    """Temp files and directories in ``parent`` whose writer process is gone (a killed run), for
    the output ``name`` only when given."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    out = []
    for entry in sorted(parent.iterdir()):
        for pattern in _STALE:
            m = pattern.match(entry.name)
            if m:
                break
        else:
            continue
        pid = int(m.group("pid"))
        if name is not None and m.group("name") != name and not m.group("name").startswith(name + "_"):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            out.append(entry)
    return out


def remove_stale_temp(parent: str | os.PathLike, name: Optional[str] = None, log=None) -> List[Path]:
    """Remove what ``stale_temp_entries`` finds, saying so; returns the entries removed."""
    removed = []
    for entry in stale_temp_entries(parent, name):
        size = _size(entry)
        if not remove_quietly([entry], log=log):
            removed.append(entry)
            (log or _warn)(f"removed {entry} ({size / 2**20:.1f} MiB), left by a killed run")
    return removed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- atomic writes
def temp_name(path: str | os.PathLike) -> str:
    """``DIR/.NAME.tmp-<pid>`` beside ``path``: hidden, on the same file system (so the final rename
    is atomic), and of the form ``stale_temp_entries`` recognises once its writer is gone."""
    path = os.fspath(path)
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp path to write (by any means: ``torch.save``, ``savefig`` with an explicit
    format); it replaces ``path`` when the block finishes and is removed when it raises."""
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        remove_quietly([tmp])
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", fsync: bool = False,
                encoding: Optional[str] = "utf-8", newline: Optional[str] = None) -> Iterator[IO]:
    """``open(path, mode)`` whose file appears only complete. ``fsync``: the bytes are on disk
    before the rename, so a power cut cannot leave an empty file under the final name."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> None:
    with atomic_open(path, "w", fsync=fsync) as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, data: Any, fsync: bool = False, **dump_kwargs) -> None:
    """``json.dumps(data, **dump_kwargs)`` (indent 2 unless given) and a final newline."""
    dump_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(data, **dump_kwargs) + "\n", fsync=fsync)


def atomic_write_lines(path: str | os.PathLike, rows: Iterable[Any], fsync: bool = False, **dump_kwargs) -> None:
    """A JSONL file: one ``json.dumps(row, **dump_kwargs)`` a line."""
    with atomic_open(path, "w", fsync=fsync) as f:
        for row in rows:
            f.write(json.dumps(row, **dump_kwargs) + "\n")


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished directory ``tmp`` in the place of ``target``. An existing ``target`` is
    first renamed aside (``.NAME.old-<pid>``) and removed only after the new one is in place, so
    at every instant one complete version exists."""
    tmp, target = os.fspath(tmp), os.fspath(target)
    old = None
    if os.path.exists(target):
        parent, name = os.path.split(target)
        old = os.path.join(parent, f".{name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
    os.rename(tmp, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[str]:
    """Yield an empty temp directory (``.NAME.tmp-<pid>`` beside ``target``) that becomes
    ``target`` when the block finishes; when it raises, the temp directory is removed and
    ``target`` is untouched."""
    tmp = temp_name(target)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


# ---------------------------------------------------------------- checkpoint tracker
class TrackerError(ValueError):
    """The tracker file exists but does not hold an iteration number; the message names it."""


def tracker_path(root: str | os.PathLike) -> Path:
    return Path(root) / TRACKER_FILE


def read_tracker(root: str | os.PathLike) -> Optional[int]:
    """The iteration named by ``root``'s tracker file; None when there is no tracker file."""
    path = tracker_path(root)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrackerError(f"{path}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    if not text.isdigit():
        raise TrackerError(f"{path}: expected an iteration number, found {text!r}")
    return int(text)


def write_tracker(root: str | os.PathLike, iteration: int) -> None:
    """Name ``iteration`` as the newest finished one, atomically (written after the iteration)."""
    atomic_write_text(tracker_path(root), str(int(iteration)))
