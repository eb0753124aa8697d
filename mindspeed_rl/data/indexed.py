"""Megatron indexed-dataset files for prompts and labels, and their atomic publication.

A preprocessed dataset with prefix ``P`` is::

    P_prompt.bin / P_prompt.idx   int32 prompt token ids, one sequence (and document) per row
    P_label.bin  / P_label.idx    uint8 UTF-8 bytes of the ground-truth answer, one per row
    P_meta.json                   source, template, tokenizer, counts, rejects, config hash
    P_rejects.jsonl               one line per rejected input row: index, file, row, reason

``P_meta.json`` is written last: a dataset without it (an interrupted run) is never read.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from mindspeed_rl.utils.imports import require

PROMPT, LABEL = "prompt", "label"
PROMPT_DTYPE, LABEL_DTYPE = np.int32, np.uint8


def part_prefix(prefix: str, part: str) -> str:
    return f"{prefix}_{part}"


def meta_path(prefix: str) -> str:
    return f"{prefix}_meta.json"


def rejects_path(prefix: str) -> str:
    return f"{prefix}_rejects.jsonl"


def _indexed_module():
    import warnings

    with warnings.catch_warnings():  # megatron-core warns about Apex/TE at import; irrelevant here
        warnings.simplefilter("ignore")
        return require("megatron.core.datasets.indexed_dataset", purpose="writing/reading Megatron indexed datasets")


# Megatron-core's indexed dataset layout (megatron/core/datasets/indexed_dataset.py), written
# here with numpy: the builder's per-row calls cost more than tokenising, and importing
# megatron-core takes seconds of CPU that the tokenizer workers need. Reading stays with
# megatron-core's IndexedDataset; tests check the files are byte-identical to its builder's.
_IDX_HEADER = b"MMIDIDX\x00\x00"
_IDX_VERSION = 1
_DTYPE_CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.float64: 6, np.float32: 7,
                np.uint16: 8}


class IndexedFileWriter:
    """One .bin/.idx pair, one sequence per document, written in bulk: ``add_many`` takes a
    chunk's values concatenated plus the length of each sequence."""

    def __init__(self, bin_path: str, dtype=np.int32):
        self.dtype = np.dtype(dtype)
        self.code = _DTYPE_CODES[self.dtype.type]
        self.bin_path = bin_path
        self.data_file = open(bin_path, "wb")
        self._lengths: List[np.ndarray] = []
        self.count = 0

    def add_many(self, values: np.ndarray, lengths: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        lengths = np.asarray(lengths, dtype=np.int64)
        if int(lengths.sum()) != values.size or (lengths.size and lengths.min() < 0):
            raise ValueError(f"{self.bin_path}: lengths sum to {int(lengths.sum())}, values hold {values.size}")
        self.data_file.write(values.data)
        self._lengths.append(lengths)
        self.count += lengths.size

    def finalize(self, idx_path: str) -> None:
        self.data_file.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        if lengths.size and lengths.max() > np.iinfo(np.int32).max:
            raise ValueError(f"{self.bin_path}: a sequence of {lengths.max()} items does not fit the int32 index")
        pointers = np.zeros(lengths.size, dtype=np.int64)
        np.cumsum(lengths[:-1] * self.dtype.itemsize, out=pointers[1:])
        with open(idx_path, "wb") as f:
            f.write(_IDX_HEADER)
            f.write(struct.pack("<Q", _IDX_VERSION))
            f.write(struct.pack("<B", self.code))
            f.write(struct.pack("<Q", lengths.size))  # sequences
            f.write(struct.pack("<Q", lengths.size + 1))  # document boundaries: one sequence each
            f.write(lengths.astype(np.int32).tobytes())
            f.write(pointers.tobytes())
            f.write(np.arange(lengths.size + 1, dtype=np.int64).tobytes())

    def close(self) -> None:
        if not self.data_file.closed:
            self.data_file.close()  # a failed flush still closes the descriptor (then raises)


class PromptLabelWriter:
    """Streams rows into temp-named .bin/.idx pairs; ``publish`` renames them into place."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.tmp_prefix = f"{prefix}.tmp{os.getpid()}"
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
        self._writers = {
            PROMPT: IndexedFileWriter(part_prefix(self.tmp_prefix, PROMPT) + ".bin", dtype=PROMPT_DTYPE),
            LABEL: IndexedFileWriter(part_prefix(self.tmp_prefix, LABEL) + ".bin", dtype=LABEL_DTYPE),
        }

    @property
    def count(self) -> int:
        return self._writers[PROMPT].count

    def add_many(self, ids: np.ndarray, lengths: np.ndarray, label_bytes: bytes, label_lengths: np.ndarray) -> None:
        """A chunk of rows: prompt ids concatenated + per-row lengths, UTF-8 labels likewise."""
        if len(lengths) != len(label_lengths):
            raise ValueError(f"{len(lengths)} prompts but {len(label_lengths)} labels")
        self._writers[PROMPT].add_many(ids, lengths)
        self._writers[LABEL].add_many(np.frombuffer(label_bytes, dtype=LABEL_DTYPE), label_lengths)

    def add(self, ids: np.ndarray, label: str) -> None:
        lab = label.encode("utf-8")
        self.add_many(np.asarray(ids), np.array([np.size(ids)]), lab, np.array([len(lab)]))

    def finalize(self) -> None:
        for part, writer in self._writers.items():
            writer.finalize(part_prefix(self.tmp_prefix, part) + ".idx")

    def temp_files(self) -> List[str]:
        return [part_prefix(self.tmp_prefix, p) + ext for p in (PROMPT, LABEL) for ext in (".bin", ".idx")]

    def publish(self) -> Dict[str, str]:
        """Rename temp files to their final names (the caller writes meta afterwards)."""
        # an older meta would make a half-replaced dataset look complete: remove it first
        if os.path.exists(meta_path(self.prefix)):
            os.remove(meta_path(self.prefix))
        final = {}
        for part in (PROMPT, LABEL):
            for ext in (".bin", ".idx"):
                src = part_prefix(self.tmp_prefix, part) + ext
                dst = part_prefix(self.prefix, part) + ext
                os.replace(src, dst)
                final[f"{part}{ext}"] = dst
        return final

    def discard(self) -> None:
        """Drop the temp files after a failure; never raises, so the failure itself is what the user
        sees (on a full disk, closing a file flushes its buffer and fails again)."""
        from mindspeed_rl.utils.fs import remove_quietly

        for writer in self._writers.values():
            try:
                writer.close()
            except OSError:
                pass  # the buffered tail is lost with the file; the original error is reported
        remove_quietly(self.temp_files())


def open_indexed(prefix: str, part: str):
    mod = _indexed_module()
    return mod.IndexedDataset(part_prefix(prefix, part), mmap=True)


_DTYPE_SIZES = {code: np.dtype(t).itemsize for t, code in _DTYPE_CODES.items()}


def check_indexed_files(path_prefix: str) -> Optional[str]:
    """What is wrong with ``path_prefix``.idx/.bin (None when sound): a missing file, a damaged
    header, or sizes that disagree (a .bin shorter than its index says is a truncated copy).
    Reads the header and the last pointer only, so it costs the same for any dataset size."""
    idx, bin_ = path_prefix + ".idx", path_prefix + ".bin"
    for path in (idx, bin_):
        if not os.path.isfile(path):
            return f"{path} is missing"
    idx_size = os.path.getsize(idx)
    head = 9 + 8 + 1 + 8 + 8
    with open(idx, "rb") as f:
        header = f.read(head)
        if len(header) < head or header[:9] != _IDX_HEADER:
            return f"{idx} is not a Megatron index (damaged or truncated header)"
        code = header[17]
        seqs, docs = struct.unpack("<QQ", header[18:34])
        if code not in _DTYPE_SIZES:
            return f"{idx} names an unknown dtype code {code}"
        want_idx = head + seqs * 4 + seqs * 8 + docs * 8
        if idx_size != want_idx:
            return f"{idx} holds {idx_size} bytes, its header needs {want_idx} (truncated or damaged)"
        if seqs == 0:
            want_bin = 0
        else:
            f.seek(head + (seqs - 1) * 4)
            (last_len,) = struct.unpack("<i", f.read(4))
            f.seek(head + seqs * 4 + (seqs - 1) * 8)
            (last_ptr,) = struct.unpack("<q", f.read(8))
            want_bin = last_ptr + last_len * _DTYPE_SIZES[code]
    bin_size = os.path.getsize(bin_)
    if bin_size != want_bin:
        return (f"{bin_} holds {bin_size} bytes but its index {os.path.basename(idx)} needs {want_bin}"
                + (" (truncated)" if bin_size < want_bin else ""))
    return None
