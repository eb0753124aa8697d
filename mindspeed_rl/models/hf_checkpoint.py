"""Hugging Face safetensors checkpoints, read lazily and written tensor by tensor.

Reading: the safetensors header of every shard is parsed up front (names, dtypes, shapes, byte
ranges), which validates the whole checkpoint before anything is converted; tensors (or row
ranges of them) are then read with plain ``readinto`` into fresh tensors. No mmap: mapped pages
would stay resident and count against the converter's memory.

Writing: ``SafetensorsStreamWriter`` writes the header first (all shapes are known in advance),
then each tensor's bytes as it is produced, so a shard never has to be held in memory. The
safetensors package only writes whole dicts; the format itself (8-byte little-endian header size,
JSON header, raw bytes) is what lets us stream.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Iterable, Optional

import torch

from mindspeed_rl.models.errors import CheckpointError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


def dtype_from_str(name: str) -> torch.dtype:
    aliases = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
               "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name not in aliases:
        raise ValueError(f"unknown dtype {name!r}; use one of bf16, fp16, fp32")
    return aliases[name]


@dataclass(frozen=True)
class TensorEntry:
    file: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int

    @property
    def row_bytes(self) -> int:
        n = 1
        for s in self.shape[1:]:
            n *= s
        return n * torch.empty((), dtype=self.dtype).element_size()


def read_header(path: str) -> tuple[dict, int]:
    """(header dict, data start offset) of one safetensors file; CheckpointError if damaged."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read shard ({exc}); re-download it") from None
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes); re-download it")
        (n,) = struct.unpack("<Q", raw)
        if 8 + n > size:
            raise CheckpointError(f"{path}: truncated safetensors header; re-download it")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise CheckpointError(f"{path}: corrupt safetensors header; re-download it") from None
    data_start = 8 + n
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if data_start + end > size:
        raise CheckpointError(
            f"{path}: truncated: header promises {data_start + end} bytes, file has {size}; re-download it"
        )
    return header, data_start


class HFCheckpointReader:
    """All tensors of a HF model directory (sharded with an index, or a single model.safetensors)."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        index_path = os.path.join(model_dir, INDEX_NAME)
        single = os.path.join(model_dir, SINGLE_NAME)
        index_map: Optional[dict[str, str]] = None
        if os.path.isfile(index_path):
            try:
                with open(index_path, encoding="utf-8") as f:
                    index_map = json.load(f)["weight_map"]
            except (ValueError, KeyError):
                raise CheckpointError(f"{index_path}: not a valid index (needs a 'weight_map')") from None
            files = sorted(set(index_map.values()))
        elif os.path.isfile(single):
            files = [SINGLE_NAME]
        else:
            files = sorted(p for p in os.listdir(model_dir) if p.endswith(".safetensors")) if os.path.isdir(model_dir) else []
            if not files:
                raise CheckpointError(
                    f"{model_dir}: no {INDEX_NAME}, {SINGLE_NAME} or *.safetensors; point --load-dir at a HF model directory"
                )
        missing = [f for f in files if not os.path.isfile(os.path.join(model_dir, f))]
        if missing:
            raise CheckpointError(f"{model_dir}: shard files named in {INDEX_NAME} are missing: {missing}")
        self.entries: dict[str, TensorEntry] = {}
        for fname in files:
            path = os.path.join(model_dir, fname)
            header, data_start = read_header(path)
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                if info["dtype"] not in _DTYPES:
                    raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
                a, b = info["data_offsets"]
                self.entries[name] = TensorEntry(path, _DTYPES[info["dtype"]], tuple(info["shape"]),
                                                 data_start + a, data_start + b)
        if index_map is not None:
            absent = [n for n, f in index_map.items()
                      if n not in self.entries or os.path.basename(self.entries[n].file) != f]
            if absent:
                raise CheckpointError(
                    f"{index_path} names tensors that are not in their shard files: {absent[:5]}"
                    f"{' ...' if len(absent) > 5 else ''} ({len(absent)} in all); the checkpoint is incomplete"
                )
        self._handles: dict[str, object] = {}

    def names(self) -> list[str]:
        return list(self.entries)

    def total_bytes(self) -> int:
        return sum(e.end - e.start for e in self.entries.values())

    def check_against(self, expected_shapes: dict[str, tuple[int, ...]]) -> None:
        """CheckpointError listing absent or mis-shaped tensors (run before writing anything)."""
        absent = [n for n in expected_shapes if n not in self.entries]
        if absent:
            raise CheckpointError(
                f"{self.model_dir}: tensors required by config.json are absent: {absent[:5]}"
                f"{' ...' if len(absent) > 5 else ''} ({len(absent)} in all)"
            )
        wrong = [f"{n}: {self.entries[n].shape} != expected {tuple(s)}"
                 for n, s in expected_shapes.items() if tuple(self.entries[n].shape) != tuple(s)]
        if wrong:
            raise CheckpointError(f"{self.model_dir}: tensor shapes do not match config.json: {wrong[:5]}")

    def _handle(self, path: str):
        h = self._handles.get(path)
        if h is None:
            h = self._handles[path] = open(path, "rb", buffering=0)
        return h

    def read(self, name: str, rows: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Tensor ``name``, or only rows [start, stop) of its first dimension."""
        e = self.entries[name]
        if rows is None:
            start, stop, shape = e.start, e.end, e.shape
        else:
            start = e.start + rows[0] * e.row_bytes
            stop = e.start + rows[1] * e.row_bytes
            shape = (rows[1] - rows[0], *e.shape[1:])
        out = torch.empty(stop - start, dtype=torch.uint8)
        f = self._handle(e.file)
        f.seek(start)
        view = memoryview(out.numpy())
        got = 0
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                raise CheckpointError(f"{e.file}: unexpected end of file while reading {name}")
            got += n
        return out.view(e.dtype).reshape(shape)

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SafetensorsStreamWriter:
    """Write a safetensors file whose tensor list is known up front, one tensor at a time, in order."""

    def __init__(self, path: str, entries: Iterable[tuple[str, torch.dtype, tuple[int, ...]]],
                 metadata: Optional[dict[str, str]] = None):
        self.path = path
        self.order: list[tuple[str, torch.dtype, tuple[int, ...]]] = list(entries)
        header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
        offset = 0
        for name, dtype, shape in self.order:
            n = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # keep tensor data 8-byte aligned, as safetensors does
        self.nbytes = offset
        self._f = open(path, "wb")
        self._f.write(struct.pack("<Q", len(blob)) + blob)
        self._next = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        exp_name, dtype, shape = self.order[self._next]
        if name != exp_name or tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
            raise RuntimeError(
                f"{self.path}: expected {exp_name} {dtype} {tuple(shape)}, got {name} {tensor.dtype} {tuple(tensor.shape)}"
            )
        self._f.write(memoryview(tensor.contiguous().reshape(-1).view(torch.uint8).numpy()))
        self._next += 1

    def close(self) -> None:
        if self._next != len(self.order):
            self._f.close()
            raise RuntimeError(f"{self.path}: closed after {self._next} of {len(self.order)} tensors")
        self._f.close()
