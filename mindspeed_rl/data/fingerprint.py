"""A tokenizer's identity that does not depend on how it was loaded (transformers or tokenizers):
a hash of its whole token -> id map, added tokens included. The preprocessor records it in the
dataset metadata; the trainer compares it with the run's tokenizer."""
from __future__ import annotations

import hashlib
import json


def vocab_fingerprint(vocab: dict) -> str:
    return hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()).hexdigest()[:16]
