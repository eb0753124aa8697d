"""Evaluation problems from files: presets for MATH-500, AIME24, GSM8K, or any file with field names.

Rows are read with the data room's readers (json, jsonl, parquet, ``datasets`` directories,
globs). A row without a problem or answer is an error naming the file and row: an evaluation
that silently skipped problems would report numbers over a different set.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from mindspeed_rl.data.handlers import get_path
from mindspeed_rl.data.readers import InputError, expand_inputs, iter_rows

from .config import DatasetConfig


@dataclass(frozen=True)
class DatasetPreset:
    file: str  # relative to the data directory
    problem_key: str
    answer_key: str
    subject_key: Optional[str] = None
    level_key: Optional[str] = None
    id_key: Optional[str] = None
    kind: str = "open"  # "open": free-form answers; "choice": multiple choice (choice_datasets)


# File names follow /work-style data directories (README of the data folder); the path is
# always overridable with dataset.path. Without it: $MINDSPEED_RL_DATA_DIR, then the package's copy.
PRESETS: Dict[str, DatasetPreset] = {
    "math500": DatasetPreset("math/math500_test.jsonl", "problem", "answer", "subject", "level", "unique_id"),
    "aime24": DatasetPreset("math/aime24_qwen25math.jsonl", "problem", "answer", None, None, "id"),
    "gsm8k": DatasetPreset("math/gsm8k_test.jsonl", "question", "answer"),
    # gated: read from the user's file only (choice_datasets.GPQA_SOURCE); answers shuffled per problem
    "gpqa_diamond": DatasetPreset("gpqa/gpqa_diamond.csv", "Question", "Correct Answer", "High-level domain", None,
                                  "Record ID", kind="choice"),
}


class DataMissingError(InputError):
    """The dataset's file is not there (or not configured): a table run skips the benchmark."""


def is_choice_dataset(cfg: DatasetConfig) -> bool:
    preset = PRESETS.get(cfg.name)
    return preset is not None and preset.kind == "choice"
DATA_DIR_ENV = "MINDSPEED_RL_DATA_DIR"
# MATH-500, AIME24 and GSM8K ship with the package (data/README.md: sources, MIT licences).
PACKAGED_DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass
class EvalProblem:
    index: int  # row index in the dataset (stable across slices; seeds and resume key on it)
    id: str
    problem: str
    answer: str  # as stored (the scorer takes the final answer of a boxed / '####' solution)
    groups: Dict[str, Any] = field(default_factory=dict)  # {"subject": ..., "level": ...}


@dataclass
class LoadedDataset:
    name: str
    files: List[str]
    problems: List[EvalProblem]
    fingerprint: str  # sha256 over the selected problems' text, answers and indices
    keys: Dict[str, Optional[str]]


def resolve_dataset(cfg: DatasetConfig) -> DatasetConfig:
    """Fill the preset's file and keys into ``cfg`` where they are unset."""
    preset = PRESETS.get(cfg.name)
    out = dataclasses.replace(cfg)
    if preset is None:
        missing = [k for k in ("path", "problem_key", "answer_key") if not getattr(cfg, k)]
        if missing:
            raise InputError(
                f"dataset.name={cfg.name!r} is not a preset ({sorted(PRESETS)}), so set "
                + ", ".join(f"dataset.{k}" for k in missing) + " (e.g. dataset.path=my.jsonl "
                "dataset.problem_key=problem dataset.answer_key=answer)")
        return out
    for key in ("problem_key", "answer_key", "subject_key", "level_key", "id_key"):
        if getattr(out, key) is None:
            setattr(out, key, getattr(preset, key))
    if not out.path:
        data_dir = os.environ.get(DATA_DIR_ENV)
        if not data_dir and (PACKAGED_DATA_DIR / preset.file).is_file():
            data_dir = str(PACKAGED_DATA_DIR)
        if not data_dir:
            if preset.kind == "choice":
                from .choice_datasets import missing_file_message

                raise DataMissingError(missing_file_message(cfg.name, "no dataset.path given"))
            raise DataMissingError(
                f"dataset.name={cfg.name!r}: no file given; set dataset.path=<{Path(preset.file).name}> "
                f"(or {DATA_DIR_ENV}=<dir holding {preset.file}>)")
        out.path = str(Path(data_dir) / preset.file)
    return out


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # AIME/GSM8K answers are sometimes stored as numbers
    return value if isinstance(value, str) else None


def check_data_present(cfg: DatasetConfig) -> DatasetConfig:
    """``cfg`` resolved; DataMissingError when its file is not there (before anything is read)."""
    cfg = resolve_dataset(cfg)
    if not any(c in str(cfg.path) for c in "*?[,") and not Path(cfg.path).exists():
        if is_choice_dataset(cfg):
            from .choice_datasets import missing_file_message

            raise DataMissingError(missing_file_message(cfg.name, cfg.path))
        raise DataMissingError(f"dataset {cfg.name}: {cfg.path}: no such file; set dataset.path=<file> "
                               f"(or {DATA_DIR_ENV}=<dir holding {PRESETS[cfg.name].file if cfg.name in PRESETS else 'it'}>)")
    return cfg


def _load_choice_problems(cfg: DatasetConfig) -> LoadedDataset:
    from .choice_datasets import read_choice_rows

    files = expand_inputs(cfg.path)
    stop = None if cfg.max_problems is None else cfg.start + cfg.max_problems
    problems: List[EvalProblem] = []
    digest = hashlib.sha256()
    offset = 0
    for path in files:
        count = 0
        for row in read_choice_rows(Path(path), cfg.id_key, cfg.subject_key, cfg.choice_seed):
            index = offset + row["index"]
            count += 1
            if index < cfg.start or (stop is not None and index >= stop):
                continue
            problems.append(EvalProblem(index, row["id"], row["problem"], row["answer"], row["groups"]))
            digest.update(json.dumps([index, row["problem"], row["answer"]]).encode())
        offset += count
    if not problems:
        raise InputError(f"dataset {cfg.name!r} at {cfg.path}: no problems at start={cfg.start}; lower dataset.start")
    keys = {k: getattr(cfg, k) for k in ("problem_key", "answer_key", "subject_key", "level_key", "id_key")}
    keys["choice_seed"] = cfg.choice_seed
    return LoadedDataset(cfg.name, [str(f) for f in files], problems, digest.hexdigest(), keys)


def load_problems(cfg: DatasetConfig) -> LoadedDataset:
    """Read, validate and slice the problems ``cfg`` names."""
    cfg = check_data_present(cfg)
    if is_choice_dataset(cfg):
        return _load_choice_problems(cfg)
    files = expand_inputs(cfg.path)
    problems: List[EvalProblem] = []
    stop = None if cfg.max_problems is None else cfg.start + cfg.max_problems
    digest = hashlib.sha256()
    rows_seen = 0
    for row in iter_rows(files, cfg.format, limit=stop):
        rows_seen += 1
        if row.index < cfg.start:
            continue
        where = f"{row.file} row {row.row_in_file}"
        if row.data is None:
            raise InputError(f"{where}: {row.error}; fix or remove the row")
        values = {}
        for key in ("problem_key", "answer_key"):
            column = getattr(cfg, key)
            value = _text(get_path(row.data, column))
            if value is None or not value.strip():
                raise InputError(f"{where}: no text at dataset.{key}={column!r} (columns: {sorted(row.data)}); "
                                 f"set dataset.{key} to the right column")
            values[key] = value
        groups = {}
        for name, key in (("subject", cfg.subject_key), ("level", cfg.level_key)):
            if key:
                value = get_path(row.data, key)
                if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                    groups[name] = value
        pid = get_path(row.data, cfg.id_key) if cfg.id_key else None
        pid = str(row.index) if not isinstance(pid, (str, int)) else str(pid)
        problems.append(EvalProblem(row.index, pid, values["problem_key"], values["answer_key"], groups))
        digest.update(json.dumps([row.index, values["problem_key"], values["answer_key"]]).encode())
    if not rows_seen:
        raise InputError(f"dataset {cfg.name!r}: {cfg.path} is empty (no rows); point dataset.path at the problems file")
    if not problems:
        raise InputError(f"dataset {cfg.name!r} at {cfg.path}: no problems at start={cfg.start}; lower dataset.start")
    keys = {k: getattr(cfg, k) for k in ("problem_key", "answer_key", "subject_key", "level_key", "id_key")}
    return LoadedDataset(cfg.name, [str(f) for f in files], problems, digest.hexdigest(), keys)
