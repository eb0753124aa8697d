"""Run checkpoints written atomically: a crash or Ctrl-C never leaves a directory that looks complete.

Layout (Megatron-style, so tools that read ``latest_checkpointed_iteration.txt`` work)::

    save_dir/
      latest_checkpointed_iteration.txt     written last, by atomic replace
      iter_0000010/
        run_state.json                      iteration, sampler state, consumed prompts, config hash,
                                            "export": what mcore2hf needs (tokenizer source, stop ids)
        hf_config/                          config.json, tokenizer and generation config files, so the
                                            checkpoint exports on its own (tools/convert mcore2hf)
        driver_rng.pt                       the driver's RNG state
        actor/ ...                          the actor engine's own files (model, optimizer, RNG)

A checkpoint is built in ``iter_0000010.tmp`` and renamed into place only when every part is
written; stale ``*.tmp`` directories from an interrupted save are removed on the next save.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from mindspeed_rl.utils.fs import TRACKER_FILE as TRACKER  # noqa: F401 - re-exported
from mindspeed_rl.utils.fs import atomic_write_json, read_tracker, replace_dir, tracker_path, write_tracker

SIDE_DIR = "hf_config"


def iteration_dir(save_dir: str | Path, iteration: int) -> Path:
    return Path(save_dir) / f"iter_{iteration:07d}"


def latest_iteration(save_dir: str | Path) -> int | None:
    it = read_tracker(save_dir)  # a TrackerError (ValueError) names a damaged tracker
    if it is None:
        return None
    tracker = tracker_path(save_dir)
    if not (iteration_dir(save_dir, it) / "run_state.json").is_file():
        raise FileNotFoundError(f"{tracker} names iteration {it} but {iteration_dir(save_dir, it)} is incomplete or missing")
    return it


def save_checkpoint(save_dir: str | Path, iteration: int, run_state: dict[str, Any],
                    write_parts: Callable[[Path], None], keep_last: int = 0,
                    side_dirs: Sequence[str | Path] = ()) -> Path:
    """``write_parts(tmp_dir)`` writes the engines' files; then hf_config/ (the small non-weight
    files of ``side_dirs``, later ones winning), run_state.json, rename, tracker."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    for stale in save_dir.glob("iter_*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    final = iteration_dir(save_dir, iteration)
    tmp = final.with_name(final.name + ".tmp")
    tmp.mkdir(parents=True)
    write_parts(tmp)
    if side_dirs:
        from mindspeed_rl.models.convert import copy_side_files

        for src in side_dirs:
            if src and Path(src).is_dir():
                copy_side_files(str(src), str(tmp / SIDE_DIR))
    atomic_write_json(tmp / "run_state.json", {"iteration": iteration, **run_state}, fsync=True, indent=1)
    replace_dir(tmp, final)
    write_tracker(save_dir, iteration)
    if keep_last > 0:
        done = sorted(p for p in save_dir.glob("iter_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_run_state(save_dir: str | Path, iteration: int | None = None) -> tuple[int, dict[str, Any], Path] | None:
    save_dir = Path(save_dir)
    it = latest_iteration(save_dir) if iteration is None else iteration
    if it is None:
        return None
    path = iteration_dir(save_dir, it)
    with open(path / "run_state.json", encoding="utf-8") as f:
        return it, json.load(f), path
