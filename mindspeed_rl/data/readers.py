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


def _iter_file(path: Path, fmt: str, limit: Optional[int] = None, columns: Optional[List[str]] = None) -> Iterator[tuple]:
    """(data, error) per row; ``columns`` limits what is read (parquet, datasets) or kept (json)."""
    if columns is not None and fmt in ("json", "jsonl"):
        keep = list(columns)
        for data, error in _iter_file(path, fmt, limit):
            yield ({k: data[k] for k in keep if k in data} if data is not None else None), error
        return
    n = 0
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue  # blank lines are not rows
                try:
                    data = json.loads(line)
                    yield (data, "") if isinstance(data, dict) else (None, f"line {lineno} is not a JSON object")
                except json.JSONDecodeError as exc:
                    yield None, f"line {lineno}: {exc}"
                n += 1
                if limit and n >= limit:
                    return
    elif fmt == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); for JSON lines set input_format=jsonl") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of row objects, got {type(data).__name__}")
        for item in data[:limit] if limit else data:
            yield (item, "") if isinstance(item, dict) else (None, "row is not a JSON object")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=4096, columns=columns):
            for item in batch.to_pylist():
                yield item, ""
                n += 1
                if limit and n >= limit:
                    return
    elif fmt == "hf_disk":
        ds = _hf_dataset(path)
        if columns is not None:
            ds = ds.select_columns(list(columns))
        stop = len(ds) if not limit else min(limit, len(ds))
        for start in range(0, stop, 4096):
            yield from ((item, "") for item in _rows(ds, start, min(start + 4096, stop)))
    else:  # pragma: no cover - detect_format guards this
        raise InputError(f"unknown format {fmt}")


def _rows(ds, start: int, stop: int) -> List[Dict[str, Any]]:
    batch = ds[start:stop]  # columnar dict; transpose to row dicts
    keys = list(batch)
    return [dict(zip(keys, vals)) for vals in zip(*(batch[k] for k in keys))]


def iter_rows(
    paths: List[Path], fmt: str = "auto", limit: Optional[int] = None, columns: Optional[Dict[str, List[str]]] = None
) -> Iterator[RawRow]:
    """Rows of all files in order; ``columns`` maps a file path to the columns to read from it."""
    index = 0
    for path in paths:
        kind = detect_format(path, fmt)
        cols = columns.get(str(path)) if columns else None
        for j, (data, error) in enumerate(_iter_file(path, kind, columns=cols)):
            if limit is not None and index >= limit:
                return
            yield RawRow(index=index, file=str(path), row_in_file=j, data=data, error=error)
            index += 1
