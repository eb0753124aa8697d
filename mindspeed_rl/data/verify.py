"""Exact round-trip check of a chunk of prompts: do the stored ids decode to the rendered text?

``tokenizer.decode_batch`` answers it but costs a tenth of the encoding time. For byte-level BPE
tokenizers (GPT-2, Qwen, Llama-3, DeepSeek) decoding is a byte concatenation: every vocabulary
token stands for a fixed byte string (its characters mapped back through the byte-level
alphabet) and added tokens for their UTF-8 content. ``ByteLevelChecker`` gathers those bytes for
a whole chunk with numpy and compares them with the UTF-8 of the texts. Equal bytes mean the
decoded text is exactly the rendered text; any difference is settled by ``decode_batch``, so the
verdict per row is never looser than decoding.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np


def _byte_level_alphabet() -> dict:
    """char -> byte of the byte-level alphabet (printable Latin-1 bytes stand for themselves,
    the other 68 bytes are shifted to code points 256 and up, in byte order)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    table = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


class ByteLevelChecker:
    """Bytes of every token id, for a numpy gather-and-compare over a chunk."""

    def __init__(self, blob: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
        self.blob, self.starts, self.lengths = blob, starts, lengths

    @classmethod
    def for_tokenizer(cls, tokenizer) -> Optional["ByteLevelChecker"]:
        """A checker for a ``tokenizers.Tokenizer`` with a ByteLevel decoder; None otherwise."""
        if type(tokenizer.decoder).__name__ != "ByteLevel":
            return None
        added = {i: t.content for i, t in tokenizer.get_added_tokens_decoder().items()}
        n = tokenizer.get_vocab_size(with_added_tokens=True)
        n = max([n] + [i + 1 for i in added])
        tokens = [""] * n
        for token, i in tokenizer.get_vocab(with_added_tokens=False).items():
            tokens[i] = token
        model_ids = [i for i in range(n) if i not in added]
        # one char per byte: map the code points of all tokens at once through a lookup table
        alphabet = _byte_level_alphabet()
        lut = np.full(max(map(ord, alphabet)) + 1, -1, dtype=np.int16)
        for c, b in alphabet.items():
            lut[ord(c)] = b
        model_tokens = [tokens[i] for i in model_ids]
        points = np.frombuffer("".join(model_tokens).encode("utf-32-le"), dtype=np.uint32)
        if points.size and points.max() >= lut.size:
            return None  # not a pure byte-level vocabulary: leave it to decode_batch
        mapped = lut[points]
        if (mapped < 0).any():
            return None
        model_bytes = mapped.astype(np.uint8).tobytes()
        model_lengths = np.fromiter(map(len, model_tokens), dtype=np.int64, count=len(model_tokens))
        lengths = np.zeros(n, dtype=np.int64)
        lengths[model_ids] = model_lengths
        # added tokens decode to their content as is, not through the byte-level alphabet
        pieces = {i: content.encode("utf-8") for i, content in added.items()}
        for i, piece in pieces.items():
            lengths[i] = len(piece)
        # blob = model tokens in id order, then added tokens; starts index into it
        starts = np.zeros(n, dtype=np.int64)
        model_starts = np.zeros(len(model_ids), dtype=np.int64)
        np.cumsum(model_lengths[:-1], out=model_starts[1:])
        starts[model_ids] = model_starts
        offset = len(model_bytes)
        extra = []
        for i in sorted(added):
            starts[i] = offset
            offset += len(pieces[i])
            extra.append(pieces[i])
        blob = np.frombuffer(model_bytes + b"".join(extra), dtype=np.uint8)
        return cls(blob, starts, lengths)

    def matches(self, ids: np.ndarray, lengths: np.ndarray, texts: Sequence[str]) -> bool:
        """True when every row's ids (concatenated in ``ids``, ``lengths`` per row) give exactly the
        UTF-8 bytes of its text. False says some row may differ, not which."""
        if ids.size and (ids.min() < 0 or ids.max() >= self.lengths.size):
            return False
        encoded = [t.encode("utf-8") for t in texts]
        tok_len = self.lengths[ids]
        # bytes per row from its tokens must equal the bytes of its text
        row_bytes = np.zeros(len(texts), dtype=np.int64)
        nonempty = lengths > 0
        if nonempty.any():
            row_start = np.zeros(len(texts), dtype=np.int64)
            np.cumsum(lengths[:-1], out=row_start[1:])
            row_bytes[nonempty] = np.add.reduceat(tok_len, row_start[nonempty])
        text_bytes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        if not np.array_equal(row_bytes, text_bytes):
            return False
        total = int(text_bytes.sum())
        # position of each output byte in the blob: token start + offset within the token
        out_start = np.cumsum(tok_len) - tok_len
        positions = np.repeat(self.starts[ids] - out_start, tok_len) + np.arange(total, dtype=np.int64)
        return bool(np.array_equal(self.blob[positions], np.frombuffer(b"".join(encoded), dtype=np.uint8)))


def mismatched_rows(tokenizer, id_lists: List[List[int]], texts: Sequence[str]) -> List[int]:
    """Rows whose ids do not decode to their text, by decoding (the reference check)."""
    decoded = tokenizer.decode_batch(id_lists, skip_special_tokens=False)
    return [k for k, (d, t) in enumerate(zip(decoded, texts)) if d != t]
