"""Row -> (prompt token ids, label) for one chunk of rows; runs in the preprocessor's workers.

Kept free of transformers, torch and megatron so a spawned worker starts in well under a second:
it rebuilds the fast tokenizer from its serialized JSON (``tokenizers.Tokenizer.from_str``) and
batch-encodes a whole chunk in one Rust call.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .handlers import RowRejected, get_handler
from .readers import RawRow
from .templates import ChatTemplate


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
    indices: List[int]  # kept rows, input order
    ids: List[np.ndarray]  # int32 prompt ids per kept row
    labels: List[str]
    rejects: List[Tuple[int, str, int, str, str]]  # (index, file, row_in_file, reason, detail)
    prompt_tokens: int = 0


class RowEncoder:
    def __init__(self, spec: EncoderSpec):
        from tokenizers import Tokenizer

        self.spec = spec
        self.tokenizer = Tokenizer.from_str(spec.tokenizer_json)
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

    def encode_chunk(self, rows: Sequence[RawRow]) -> ChunkResult:
        out = ChunkResult([], [], [], [])
        pending: List[Tuple[RawRow, str, str]] = []
        for row in rows:
            try:
                text, label = self._render(row)
            except RowRejected as rej:
                out.rejects.append((row.index, row.file, row.row_in_file, rej.reason, rej.detail))
                continue
            pending.append((row, text, label))
        if not pending:
            return out
        encodings = self.tokenizer.encode_batch([p[1] for p in pending], add_special_tokens=False)
        id_lists = [e.ids for e in encodings]
        decoded = (
            self.tokenizer.decode_batch(id_lists, skip_special_tokens=False) if self.spec.verify_roundtrip else None
        )
        limit = self.spec.max_prompt_length
        for k, ((row, text, label), ids) in enumerate(zip(pending, id_lists)):
            reject = None
            if limit and len(ids) > limit:
                reject = ("prompt_too_long", f"{len(ids)} tokens > max_prompt_length={limit}")
            elif decoded is not None and decoded[k] != text:
                reject = ("roundtrip_mismatch", "decoding the token ids does not give the rendered text back")
            if reject:
                out.rejects.append((row.index, row.file, row.row_in_file) + reject)
                continue
            out.indices.append(row.index)
            out.ids.append(np.asarray(ids, dtype=np.int32))
            out.labels.append(label)
            out.prompt_tokens += len(ids)
        return out


_WORKER: Optional[RowEncoder] = None


def init_worker(spec: EncoderSpec, single_thread: bool) -> None:
    global _WORKER
    if single_thread:
        # several worker processes already use the cores; one Rust thread pool each would thrash
        os.environ["RAYON_NUM_THREADS"] = "1"
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER = RowEncoder(spec)


def encode_in_worker(rows: Sequence[RawRow]) -> ChunkResult:
    assert _WORKER is not None, "init_worker was not called"
    return _WORKER.encode_chunk(rows)
