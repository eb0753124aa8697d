"""Read dataset rows from json, jsonl, parquet, a ``datasets`` save directory or a glob of files.

Rows stream out in file order as ``RawRow(index, file, row_in_file, data)``; a line that is not
valid JSON comes out with ``data=None`` and ``error`` set, so the preprocessor counts it as a
reject instead of aborting the whole run or skipping it silently.
"""
from __future__ import annotations

import glob as globlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

FORMATS = ("auto", "json", "jsonl", "parquet", "hf_disk")
_SUFFIX = {".json": "json", ".jsonl": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class InputError(ValueError):
    """The input path or format is wrong; the message names the path and the fix."""


@dataclass
class RawRow:
    index: int  # position over all input files (the row index in the rejects file)
    file: str
    row_in_file: int
    data: Optional[Dict[str, Any]]
    error: str = ""


def _is_hf_disk(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists())


def expand_inputs(spec: str) -> List[Path]:
    """Files behind ``spec``: one file, a datasets save dir, a glob, or a comma-separated list."""
    paths: List[Path] = []
    for part in [s.strip() for s in str(spec).split(",") if s.strip()]:
        if any(c in part for c in "*?["):
            hits = sorted(Path(p) for p in globlib.glob(part, recursive=True))
            if not hits:
                raise InputError(f"input={part!r}: the glob matches no file")
            paths.extend(hits)
        else:
            p = Path(part)
            if not p.exists():
                raise InputError(f"input={part!r}: no such file or directory")
            if p.is_dir() and not _is_hf_disk(p):
                raise InputError(
                    f"input={part!r} is a directory but not a `datasets` save_to_disk directory; "
                    f"use a glob such as input='{part}/*.parquet'"
                )
            paths.append(p)
    if not paths:
        raise InputError("input is empty; set input=<file, glob or datasets directory>")
    return paths


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt not in FORMATS:
        raise InputError(f"input_format={fmt!r} is not one of {list(FORMATS)}")
    if fmt != "auto":
        return fmt
    if _is_hf_disk(path):
        return "hf_disk"
    if path.suffix.lower() in _SUFFIX:
        kind = _SUFFIX[path.suffix.lower()]
        if kind == "json":  # a .json file may hold JSON lines; look at its first character
            with open(path, "rb") as f:
                head = f.read(4096).lstrip()
            return "json" if head.startswith(b"[") else "jsonl"
        return kind
    raise InputError(f"cannot tell the format of {path} from its suffix; set input_format to one of {list(FORMATS[1:])}")


def _hf_dataset(path: Path):
    import datasets  # imported here: it is heavy and only this format needs it

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise InputError(f"{path} holds splits {list(ds)}; point input= at one split's directory")
        ds = next(iter(ds.values()))
    return ds


def columns_of(path: Path, fmt: str, sample_rows: int = 100) -> List[str]:
    """Column names (for the up-front map_keys check)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if fmt == "hf_disk":
        return list(_hf_dataset(path).column_names)
    cols: Dict[str, None] = {}
    for row in _iter_file(path, fmt, limit=sample_rows):
        if row[0] is not None:
            cols.update(dict.fromkeys(row[0]))
    return list(cols)


@dataclass
class RowBlock:
    """Consecutive rows of one file in a cheap-to-pickle form; ``rows()`` parses them.

    The preprocessor's main process only cuts the input into blocks (arrow record batches, raw
    JSON lines, or parsed items for a JSON list); the workers do the parsing, so reading does not
    serialise the pipeline on one core.
    """

    file: str
    index: int  # global index of the first row
    row_in_file: int  # its position in the file
    kind: str  # "arrow" (pyarrow RecordBatch/Table) | "lines" ((lineno, text) of JSON lines) | "items"
    payload: Any
    columns: Optional[List[str]] = None  # "lines"/"items": the keys kept per row

    def __len__(self) -> int:
        return self.payload.num_rows if self.kind == "arrow" else len(self.payload)

    def _parsed(self) -> Iterator[tuple]:
        if self.kind == "arrow":
            yield from ((item, "") for item in self.payload.to_pylist())
            return
        keep = self.columns
        if self.kind == "lines":
            items = []
            for lineno, line in self.payload:
                if isinstance(line, NotUTF8):
                    items.append((None, str(line)))
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    items.append((None, f"line {lineno}: {exc}"))
                    continue
                items.append((data, "") if isinstance(data, dict) else (None, f"line {lineno} is not a JSON object"))
        else:
            items = [(item, "") if isinstance(item, dict) else (None, "row is not a JSON object") for item in self.payload]
        for data, error in items:
            if data is not None and keep is not None:
                data = {k: data[k] for k in keep if k in data}
            yield data, error

    def rows(self) -> List[RawRow]:
        return [RawRow(index=self.index + j, file=self.file, row_in_file=self.row_in_file + j, data=data, error=error)
                for j, (data, error) in enumerate(self._parsed())]


class NotUTF8(str):
    """A JSON line that is not UTF-8: the reason its row is rejected (``line N: not UTF-8 ...``)."""


def _decode_line(raw: bytes, path: Path, lineno: int):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return NotUTF8(f"line {lineno}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")


def _file_blocks(path: Path, fmt: str, size: int, limit: Optional[int], columns: Optional[List[str]]) -> Iterator[tuple]:
    """(kind, payload) pieces of at most ``size`` rows, ``limit`` rows in all."""
    remaining = limit if limit is not None else -1

    def cut(n: int) -> int:  # rows to take from a piece of n
        return n if remaining < 0 else min(n, remaining)

    if fmt == "jsonl":
        buf: List[tuple] = []
        with open(path, "rb") as f:  # decoded per line: one bad byte rejects its row, not the file
            for lineno, raw in enumerate(f, 1):
                if remaining == 0:
                    break
                if not raw.strip():
                    continue  # blank lines are not rows
                buf.append((lineno, _decode_line(raw, path, lineno)))
                remaining -= 1 if remaining > 0 else 0
                if len(buf) >= size:
                    yield "lines", buf
                    buf = []
        if buf:
            yield "lines", buf
    elif fmt == "json":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise InputError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); a JSON list file is "
                             "read whole, so re-encode it as UTF-8 (or convert it to JSON lines, where a bad "
                             "row is rejected alone)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); for JSON lines set input_format=jsonl") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of row objects, got {type(data).__name__}")
        stop = cut(len(data))
        for start in range(0, stop, size):
            yield "items", data[start:min(start + size, stop)]
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        # each batch owns its buffers: pickling a slice of a bigger batch would ship all of it
        for batch in pf.iter_batches(batch_size=size, columns=columns):
            if remaining == 0:
                return
            n = cut(batch.num_rows)
            yield "arrow", batch if n == batch.num_rows else batch.slice(0, n)
            remaining -= n if remaining > 0 else 0
    elif fmt == "hf_disk":
        ds = _hf_dataset(path)
        if columns is not None:
            ds = ds.select_columns(list(columns))
        stop = cut(len(ds))
        for start in range(0, stop, size):
            yield "items", _rows(ds, start, min(start + size, stop))
    else:  # pragma: no cover - detect_format guards this
        raise InputError(f"unknown format {fmt}")


def iter_blocks(
    paths: List[Path],
    fmt: str = "auto",
    limit: Optional[int] = None,
    columns: Optional[Dict[str, List[str]]] = None,
    block_size: int = 4096,
) -> Iterator[RowBlock]:
    """Blocks of at most ``block_size`` rows of all files in order (a block never spans files)."""
    index = 0
    for path in paths:
        if limit is not None and index >= limit:
            return
        kind = detect_format(path, fmt)
        cols = columns.get(str(path)) if columns else None
        row_in_file = 0
        left = None if limit is None else limit - index
        for piece_kind, payload in _file_blocks(path, kind, block_size, left, cols):
            block = RowBlock(str(path), index, row_in_file, piece_kind, payload, cols)
            if len(block):
                yield block
            index += len(block)
            row_in_file += len(block)


def _iter_file(path: Path, fmt: str, limit: Optional[int] = None, columns: Optional[List[str]] = None) -> Iterator[tuple]:
    """(data, error) per row; ``columns`` limits what is read (parquet, datasets) or kept (json)."""
    for kind, payload in _file_blocks(path, fmt, 4096, limit, columns):
        yield from RowBlock(str(path), 0, 0, kind, payload, columns)._parsed()


def _rows(ds, start: int, stop: int) -> List[Dict[str, Any]]:
    batch = ds[start:stop]  # columnar dict; transpose to row dicts
    keys = list(batch)
    return [dict(zip(keys, vals)) for vals in zip(*(batch[k] for k in keys))]


def iter_rows(
    paths: List[Path], fmt: str = "auto", limit: Optional[int] = None, columns: Optional[Dict[str, List[str]]] = None
) -> Iterator[RawRow]:
    """Rows of all files in order; ``columns`` maps a file path to the columns to read from it."""
    for block in iter_blocks(paths, fmt, limit=limit, columns=columns):
        yield from block.rows()
