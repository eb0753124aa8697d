"""Read a preprocessed prompt dataset back: ``PromptDataset(prefix)[i] -> PromptItem``."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np

from mindspeed_rl.utils.fs import FileFormatError, read_json

from .indexed import LABEL, PROMPT, check_indexed_files, meta_path, open_indexed, part_prefix
from .templates import ChatTemplate


class DatasetFormatError(ValueError):
    """The files at a prefix are missing, incomplete or inconsistent."""


@dataclass
class PromptItem:
    prompt_ids: np.ndarray  # int32 token ids of the rendered template text
    label: str  # ground-truth answer, exactly as in the source dataset
    index: int  # position in this dataset


class PromptDataset:
    """Prompts and labels written by ``mindspeed_rl.data.preprocess``.

    Only a complete dataset opens: ``<prefix>_meta.json`` is written last by the preprocessor,
    and the row counts of both indexed files must match it.
    """

    def __init__(self, prefix: str):
        self.prefix = str(prefix)
        mp = meta_path(self.prefix)
        if not os.path.exists(mp):
            raise DatasetFormatError(
                f"{mp} not found: {self.prefix!r} is not a complete preprocessed dataset "
                "(run cli/preprocess_data.py, or pass the output_prefix it printed)"
            )
        try:
            self.meta: Dict[str, Any] = read_json(mp, "dataset metadata")
        except FileFormatError as exc:
            raise DatasetFormatError(f"{exc} (or preprocess again)") from None
        for part in (PROMPT, LABEL):  # a truncated file would fail mid-run, inside a numpy read
            problem = check_indexed_files(part_prefix(self.prefix, part))
            if problem:
                raise DatasetFormatError(f"{problem}; the dataset at {self.prefix!r} is damaged: preprocess again")
        self._prompts = open_indexed(self.prefix, PROMPT)
        self._labels = open_indexed(self.prefix, LABEL)
        expected = self.meta["counts"]["rows_written"]
        if not (len(self._prompts) == len(self._labels) == expected):
            raise DatasetFormatError(
                f"{self.prefix}: {len(self._prompts)} prompts, {len(self._labels)} labels, meta says {expected}; "
                f"the files under {part_prefix(self.prefix, '*')} are from different runs: preprocess again"
            )

    def __len__(self) -> int:
        return len(self._prompts)

    def prompt_ids(self, idx: int) -> np.ndarray:
        return np.asarray(self._prompts[idx], dtype=np.int64)

    def label(self, idx: int) -> str:
        return bytes(self._labels[idx]).decode("utf-8")

    def __getitem__(self, idx: int) -> PromptItem:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for {n} prompts")
        idx = idx % n
        return PromptItem(prompt_ids=self.prompt_ids(idx), label=self.label(idx), index=idx)

    def batch(self, indices: List[int]) -> List[PromptItem]:
        return [self[i] for i in indices]

    @property
    def prompt_lengths(self) -> np.ndarray:
        return np.asarray(self._prompts.sequence_lengths)

    @property
    def template(self) -> ChatTemplate:
        """The template the prompts were rendered with (stop words for the rollout engine)."""
        return ChatTemplate(**self.meta["template"])

    @property
    def stop_words(self) -> List[str]:
        return list(self.meta["template"].get("stop_words", []))
