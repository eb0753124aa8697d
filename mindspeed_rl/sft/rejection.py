"""Rejection sampling into an SFT dataset: which samples to keep, and a resumable output.

A problem's samples are kept when every ``require`` reward is 1 (default: correct and formatted);
with ``keep_shortest`` only the k shortest kept ones (by response tokens). The output is written
batch by batch: first the kept rows, then one progress line per problem of the batch
(``<out>.progress.jsonl``). A batch's sampling seed depends only on the settings and its first
problem (``evaluation.runner.batch_seed``), so ``resume`` drops rows of an unfinished batch and
regenerates from the first problem without a progress line, exactly as an uninterrupted run.
Parquet outputs are assembled at the end from ``<out>.rows.jsonl``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Sequence

from mindspeed_rl.utils.fs import atomic_write_json


class GenerateError(ValueError):
    """Refused before generating: the message names the path or setting and the fix."""


@dataclass(frozen=True)
class KeepRule:
    require: tuple = ("acc", "format")  # rewards that must be 1.0
    keep_shortest: int = 0  # 0: every sample that passes


def kept_samples(samples: Sequence[Dict[str, Any]], rule: KeepRule) -> List[Dict[str, Any]]:
    """The samples of one problem that pass ``rule.require``, the ``keep_shortest`` shortest first
    when set (ties by sample index), else in sample order."""
    passed = [s for s in samples if all(float(s["rewards"].get(name, 0.0)) >= 1.0 for name in rule.require)]
    if rule.keep_shortest > 0:
        passed = sorted(passed, key=lambda s: (s["response_tokens"], s["sample_index"]))[:rule.keep_shortest]
    return passed


class ResumableOutput:
    """The rows file, the progress file and the settings beside them."""

    def __init__(self, path: str, settings: Dict[str, Any], resume: bool):
        self.path = os.path.abspath(path)
        self.parquet = self.path.endswith((".parquet", ".pq"))
        if not self.parquet and not self.path.endswith((".jsonl", ".json")):
            raise GenerateError(f"--output {path}: use a .jsonl or .parquet name")
        self.rows_path = self.path + ".rows.jsonl" if self.parquet else self.path
        self.progress_path = self.path + ".progress.jsonl"
        self.settings_path = self.path + ".settings.json"
        self.summary_path = self.path + ".summary.json"
        exists = [p for p in (self.path, self.rows_path, self.progress_path) if os.path.exists(p)]
        if exists and not resume:
            raise GenerateError(f"--output {path}: {exists[0]} exists; pass --resume to continue that run, "
                                "or choose another --output (or delete the old files)")
        self.done: Dict[int, Dict[str, Any]] = {}
        if exists:
            self._check_settings(settings)
            self.done = {int(r["problem_index"]): r for r in _read_jsonl(self.progress_path)}
            kept = [r for r in _read_jsonl(self.rows_path) if int(r["problem_index"]) in self.done]
            _write_jsonl(self.rows_path, kept)  # rows of an unfinished batch go; it is regenerated whole
        else:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            open(self.rows_path, "w").close()
        atomic_write_json(self.settings_path, settings)

    def _check_settings(self, settings: Dict[str, Any]) -> None:
        if not os.path.isfile(self.settings_path):
            raise GenerateError(f"{self.settings_path}: missing, so {self.path} cannot be resumed safely; "
                                "choose another --output")
        with open(self.settings_path, encoding="utf-8") as f:
            saved = json.load(f)
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if changed:
            key = changed[0]
            raise GenerateError(f"--resume {self.path}: {key} was {saved.get(key)!r}, now {settings.get(key)!r} "
                                f"(changed: {changed}); resume with the same settings or choose another --output")

    def append_batch(self, rows: Iterable[Dict[str, Any]], progress: Iterable[Dict[str, Any]]) -> None:
        """Kept rows first, then the progress lines: a crash between the two only loses the batch."""
        with open(self.rows_path, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with open(self.progress_path, "a", encoding="utf-8") as f:
            for p in progress:
                f.write(json.dumps(p) + "\n")
                self.done[int(p["problem_index"])] = p
            f.flush()
            os.fsync(f.fileno())

    def finish(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Write the parquet file (if asked) and ``<out>.summary.json``; return the summary."""
        if self.parquet:
            import pandas as pd

            tmp = self.path + ".tmp"
            pd.DataFrame(_read_jsonl(self.rows_path)).to_parquet(tmp, index=False)
            os.replace(tmp, self.path)
        per = [self.done[i] for i in sorted(self.done)]
        generated = sum(p["generated"] for p in per)
        kept = sum(p["kept"] for p in per)
        summary = {
            "output": self.path, "problems": len(per), "generated": generated, "kept": kept,
            "kept_fraction": kept / generated if generated else 0.0,
            "correct_fraction": sum(p["correct"] for p in per) / generated if generated else 0.0,
            "problems_with_a_kept_sample": sum(p["kept"] > 0 for p in per),
            "per_problem": [{"problem_id": p["problem_id"], "kept": p["kept"], "generated": p["generated"],
                             "kept_fraction": p["kept"] / p["generated"] if p["generated"] else 0.0} for p in per],
            "settings": settings,
        }
        atomic_write_json(self.summary_path, summary)
        return summary


def _read_jsonl(path: str) -> List[Dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a crash: its batch has no progress line
                    break
    return out


def _write_jsonl(path: str, rows: Sequence[Dict[str, Any]]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def rule_dict(rule: KeepRule) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(rule).items()}

