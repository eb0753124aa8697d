"""Row -> (prompt token ids, label) for one chunk of rows; runs in the preprocessor's workers.

Kept free of transformers, torch and megatron so a spawned worker starts in well under a second:
it rebuilds the fast tokenizer from its serialized JSON (``tokenizers.Tokenizer.from_str``) and
batch-encodes a whole chunk in one Rust call.
"""
from __future__ import annotations

import itertools
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .handlers import RowRejected, get_handler
from .readers import RawRow, RowBlock
from .templates import ChatTemplate
from .verify import ByteLevelChecker, mismatched_rows


@dataclass
class EncoderSpec:
    """Everything a worker needs, picklable."""

    tokenizer_json: str
    template: Dict[str, Any]
    handler: str
    map_keys: Dict[str, Optional[str]]
    handler_module: Optional[str]
    system_prompt: Optional[str]
    max_prompt_length: int
    verify_roundtrip: bool
    special_token_texts: List[str] = field(default_factory=list)


@dataclass
class ChunkResult:
    """One chunk's output as a few flat arrays: cheap to pickle back to the main process and
    written to the indexed files in one call each."""

    indices: np.ndarray  # int64 input index of each kept row, input order
    ids: np.ndarray  # int32 prompt ids of all kept rows, concatenated
    lengths: np.ndarray  # int32 prompt length (tokens) of each kept row
    labels: bytes  # UTF-8 labels of the kept rows, concatenated
    label_lengths: np.ndarray  # int32 bytes of each label
    rejects: List[Tuple[int, str, int, str, str]]  # (index, file, row_in_file, reason, detail)
    rows: int = 0  # rows in the chunk (kept + rejected)

    @property
    def prompt_tokens(self) -> int:
        return int(self.ids.size)

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.lengths.max()) if self.lengths.size else 0

    def prompt(self, k: int) -> np.ndarray:
        """The ids of the k-th kept row (tests and debugging; the writer takes the flat arrays)."""
        start = int(self.lengths[:k].sum())
        return self.ids[start:start + int(self.lengths[k])]

    def label(self, k: int) -> str:
        start = int(self.label_lengths[:k].sum())
        return self.labels[start:start + int(self.label_lengths[k])].decode("utf-8")


class RowEncoder:
    def __init__(self, spec: EncoderSpec):
        from tokenizers import Tokenizer

        self.spec = spec
        self.tokenizer = Tokenizer.from_str(spec.tokenizer_json)
        # same ids as encode_batch without building the offsets nobody here reads
        self._encode_batch = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        self._checker = ByteLevelChecker.for_tokenizer(self.tokenizer) if spec.verify_roundtrip else None
        self._cross_checked = False
        self.template = ChatTemplate(**spec.template)
        self.handler = get_handler(spec.handler, spec.map_keys, spec.handler_module)

    def _render(self, row: RawRow) -> Tuple[str, str]:
        if row.data is None:
            raise RowRejected("invalid_row", row.error)
        sample = self.handler(row.data)
        for msg in sample.messages:
            for tok in self.spec.special_token_texts:
                if tok in msg["content"]:
                    # it would be encoded as a control token and change the prompt's structure
                    raise RowRejected("special_token_in_text", f"{msg['role']} text contains {tok!r}")
        text = self.template.render(sample.messages, system=self.spec.system_prompt)
        return text, sample.label

    def _mismatches(self, id_lists, flat: np.ndarray, lengths: np.ndarray, texts: List[str]) -> List[int]:
        """Rows whose ids do not decode to exactly their text."""
        if not self.spec.verify_roundtrip or not texts:
            return []
        if self._checker is None:
            return mismatched_rows(self.tokenizer, id_lists, texts)
        fast_ok = self._checker.matches(flat, lengths, texts)
        if fast_ok and self._cross_checked:
            return []  # every byte equal: each row decodes to exactly its text
        bad = mismatched_rows(self.tokenizer, id_lists, texts)  # which rows, by decoding
        if not self._cross_checked:
            # first chunk: the byte check must agree with decoding, else it is not used
            self._cross_checked = True
            if fast_ok and bad:
                self._checker = None
        return bad

    def encode_chunk(self, rows: Union[RowBlock, Sequence[RawRow]]) -> ChunkResult:
        if isinstance(rows, RowBlock):
            rows = rows.rows()  # parsing happens here, in the worker
        rejects: List[Tuple[int, str, int, str, str]] = []
        kept_rows: List[RawRow] = []
        texts: List[str] = []
        labels: List[str] = []
        for row in rows:
            try:
                text, label = self._render(row)
            except RowRejected as rej:
                rejects.append((row.index, row.file, row.row_in_file, rej.reason, rej.detail))
                continue
            kept_rows.append(row)
            texts.append(text)
            labels.append(label)
        id_lists = [e.ids for e in self._encode_batch(texts, add_special_tokens=False)] if texts else []
        lengths = np.fromiter(map(len, id_lists), dtype=np.int32, count=len(id_lists))
        flat = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int32, count=int(lengths.sum()))
        bad = {k: ("roundtrip_mismatch", "decoding the token ids does not give the rendered text back")
               for k in self._mismatches(id_lists, flat, lengths, texts)}
        limit = self.spec.max_prompt_length
        if limit:
            for k in np.flatnonzero(lengths > limit).tolist():
                bad[k] = ("prompt_too_long", f"{lengths[k]} tokens > max_prompt_length={limit}")
        if bad:
            for k, reject in bad.items():
                row = kept_rows[k]
                rejects.append((row.index, row.file, row.row_in_file) + reject)
            keep = np.ones(len(id_lists), dtype=bool)
            keep[list(bad)] = False
            flat = flat[np.repeat(keep, lengths)]
            lengths = lengths[keep]
            labels = [lab for k, lab in enumerate(labels) if keep[k]]
            kept_rows = [row for k, row in enumerate(kept_rows) if keep[k]]
        label_bytes = [lab.encode("utf-8") for lab in labels]
        rejects.sort()
        return ChunkResult(
            indices=np.fromiter((r.index for r in kept_rows), dtype=np.int64, count=len(kept_rows)),
            ids=flat,
            lengths=lengths,
            labels=b"".join(label_bytes),
            label_lengths=np.fromiter(map(len, label_bytes), dtype=np.int32, count=len(label_bytes)),
            rejects=rejects,
            rows=len(rows),
        )


_WORKER: Optional[RowEncoder] = None
_WORKER_SPEC: Optional[str] = None


def init_worker(spec: Optional[EncoderSpec] = None, single_thread: bool = True) -> None:
    """Pool initializer. Without ``spec`` the worker starts before the tokenizer is loaded (its
    start-up overlaps with the main process importing transformers) and reads the spec from the
    file named in its first task."""
    global _WORKER
    if single_thread:
        # several worker processes already use the cores; one Rust thread pool each would thrash
        os.environ["RAYON_NUM_THREADS"] = "1"
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import tokenizers  # noqa: F401  (the import is part of start-up; do it before work arrives)

    if spec is not None:
        _WORKER = RowEncoder(spec)


def save_spec(spec: EncoderSpec, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(spec, f, protocol=pickle.HIGHEST_PROTOCOL)


def encode_in_worker(rows: Union[RowBlock, Sequence[RawRow]], spec_path: Optional[str] = None) -> ChunkResult:
    global _WORKER, _WORKER_SPEC
    if spec_path is not None and spec_path != _WORKER_SPEC:
        with open(spec_path, "rb") as f:
            _WORKER = RowEncoder(pickle.load(f))
        _WORKER_SPEC = spec_path
    assert _WORKER is not None, "init_worker got no spec and the task names no spec file"
    return _WORKER.encode_chunk(rows)
