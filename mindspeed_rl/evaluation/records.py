"""The per-sample JSONL file of an evaluation run, and resuming from it.

``samples.jsonl`` gets one JSON object per sampled response, appended and flushed (fsync) one
problem batch at a time, so a killed run loses at most the batch in flight. Beside it,
``samples.meta.json`` holds the generation settings the samples were made with; a run only
resumes from samples made with the same settings (otherwise it stops and says which differ).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Set

from mindspeed_rl.utils.fs import atomic_write_text

SAMPLES_FILE = "samples.jsonl"
META_FILE = "samples.meta.json"


class ResumeError(RuntimeError):
    """Existing samples cannot be resumed; the message names the file, what differs and the fix."""


def _diff(old: Mapping, new: Mapping, prefix: str = "") -> List[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(_diff(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class SampleStore:
    """Append-only sample records of one run, with the settings they were generated under."""

    def __init__(self, out_dir: str, fingerprint: Dict[str, Any], resume: bool = True, overwrite: bool = False):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, SAMPLES_FILE)
        self.meta_path = os.path.join(out_dir, META_FILE)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalise tuples, keys
        self.records: List[Dict[str, Any]] = []
        self.torn_lines = 0
        os.makedirs(out_dir, exist_ok=True)
        exists = os.path.exists(self.path) or os.path.exists(self.meta_path)
        if exists and overwrite:
            for p in (self.path, self.meta_path):
                if os.path.exists(p):
                    os.remove(p)
            exists = False
        if exists:
            if not resume:
                raise ResumeError(f"{self.path}: samples of an earlier run exist; pass resume=true to continue "
                                  "it, overwrite=true to start over, or choose another output_dir")
            self._load()
        else:
            atomic_write_text(self.meta_path, json.dumps(self.fingerprint, indent=2, sort_keys=True) + "\n",
                              fsync=True)
            open(self.path, "w", encoding="utf-8").close()

    def _load(self) -> None:
        try:
            with open(self.meta_path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ResumeError(f"{self.meta_path}: unreadable ({exc}); pass overwrite=true to start over") from None
        changed = _diff(old, self.fingerprint)
        if changed:
            raise ResumeError(
                f"{self.path} was generated with other settings ({'; '.join(changed)}); resuming would mix "
                "samples. Fix: use the same settings, another output_dir, or overwrite=true")
        if not os.path.exists(self.path):
            open(self.path, "w", encoding="utf-8").close()
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                # only a write cut short by a kill is expected, and only at the end of the file
                if any(rest.strip() for rest in lines[lineno:]):
                    raise ResumeError(f"{self.path} line {lineno} is not JSON; the file is damaged, pass "
                                      "overwrite=true to start over") from None
                self.torn_lines += 1
                continue
            self.records.append(rec)

    def by_problem(self) -> Dict[int, List[Dict[str, Any]]]:
        out: Dict[int, List[Dict[str, Any]]] = {}
        for rec in self.records:
            out.setdefault(int(rec["problem_index"]), []).append(rec)
        return out

    def keep_only(self, problem_indices: Set[int]) -> int:
        """Drop records of other problems (an unfinished batch) and torn lines; returns records dropped."""
        kept = [r for r in self.records if int(r["problem_index"]) in problem_indices]
        dropped = len(self.records) - len(kept)
        if dropped or self.torn_lines:
            atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), fsync=True)
            self.records, self.torn_lines = kept, 0
        return dropped

    def append(self, records: Iterable[Dict[str, Any]]) -> None:
        """Append one batch of records and make it durable before returning."""
        records = list(records)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.records.extend(records)

