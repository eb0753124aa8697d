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
from pathlib import Path
from typing import Dict, List

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


class PromptLabelWriter:
    """Streams rows into temp-named .bin/.idx pairs; ``publish`` renames them into place."""

    def __init__(self, prefix: str):
        mod = _indexed_module()
        self.prefix = prefix
        self.tmp_prefix = f"{prefix}.tmp{os.getpid()}"
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
        self._builders = {
            PROMPT: mod.IndexedDatasetBuilder(part_prefix(self.tmp_prefix, PROMPT) + ".bin", dtype=PROMPT_DTYPE),
            LABEL: mod.IndexedDatasetBuilder(part_prefix(self.tmp_prefix, LABEL) + ".bin", dtype=LABEL_DTYPE),
        }
        self.count = 0

    def add(self, ids: np.ndarray, label: str) -> None:
        # add_document: one sequence per document, takes numpy directly (add_item wants a tensor)
        self._builders[PROMPT].add_document(ids, [int(ids.size)])
        lab = np.frombuffer(label.encode("utf-8"), dtype=LABEL_DTYPE)
        self._builders[LABEL].add_document(lab, [int(lab.size)])
        self.count += 1

    def finalize(self) -> None:
        for part, builder in self._builders.items():
            builder.finalize(part_prefix(self.tmp_prefix, part) + ".idx")

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
        for builder in self._builders.values():
            if not builder.data_file.closed:
                builder.data_file.close()
        for path in self.temp_files():
            if os.path.exists(path):
                os.remove(path)


def open_indexed(prefix: str, part: str):
    mod = _indexed_module()
    return mod.IndexedDataset(part_prefix(prefix, part), mmap=True)
