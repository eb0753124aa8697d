"""Resume that says what it does, decided on the driver before any worker starts.

* The checkpoint to resume is checked file by file (tracker, run_state.json, the actor's
  engine_meta.json, one shard per rank, each shard's zip directory); a damaged one is named, and
  ``megatron_training.resume_fallback=true`` falls back to the newest intact iteration.
* The saved config (stored in run_state.json) is compared with the new one. Keys that do not
  change what is computed (``ALLOWED``: iterations, saving, logging, validation) are listed and
  taken. Any other change breaks exact resume and is refused unless
  ``megatron_training.resume_override=true``, which is logged with every changed value.
* A save directory already past ``train_iters`` is an error.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.trainer.run_checkpoint import iteration_dir
from mindspeed_rl.utils.fs import FileFormatError, TrackerError, read_json, read_tracker, tracker_path

# Keys whose change leaves the resumed run computing exactly what the uninterrupted run would.
ALLOWED = {
    "megatron_training.train_iters", "megatron_training.save", "megatron_training.save_interval",
    "megatron_training.load", "megatron_training.log_dir", "megatron_training.log_interval",
    "megatron_training.resume_override", "megatron_training.resume_fallback",
    "rl_config.test_freq", "rl_config.test_before_train", "rl_config.val_datasets",
    "rl_config.save_samples_interval", "rl_config.verifier_num_workers",
    "actor_config.load",  # the actor's weights come from the run checkpoint
    "critic_config.load",  # so do the critic's (PPO)
    "generate_config.weight_sync_bucket_mb",
}
# Keys the restored optimizer scheduler overrides: even with the override the saved value is used.
SCHEDULER_KEYS = {"actor_config.lr", "actor_config.min_lr", "actor_config.lr_decay_style",
                  "actor_config.lr_warmup_fraction", "actor_config.weight_decay"}


@dataclass
class ResumePlan:
    source: str
    iteration: int
    path: Path
    allowed: dict[str, tuple] = field(default_factory=dict)  # key -> (saved, new)
    overridden: dict[str, tuple] = field(default_factory=dict)
    fell_back_from: Optional[int] = None


def config_hash(cfg) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def resume_source(cfg) -> str:
    mt = cfg.megatron_training
    if mt.load:
        return mt.load
    if mt.save and tracker_path(mt.save).exists():
        return mt.save
    return ""


def checkpoint_problem(root: Path, iteration: int) -> Optional[str]:
    """What is wrong with the run checkpoint at ``iteration`` (None when intact), naming the file."""
    path = iteration_dir(root, iteration)
    if not path.is_dir():
        return f"{path} is missing"
    try:
        state = read_json(path / "run_state.json", "run state")
    except FileFormatError as exc:
        return str(exc)
    if not isinstance(state, dict) or "sampler" not in state:
        return f"{path / 'run_state.json'} lacks the sampler state"
    for part in ("actor", "critic"):  # a PPO checkpoint has a critic of its own
        if part == "actor" or (path / part).is_dir():
            problem = _engine_problem(path / part)
            if problem:
                return problem
    return None


def _engine_problem(engine_root: Path) -> Optional[str]:
    """What is wrong with one engine's checkpoint inside a run checkpoint (None when intact)."""
    try:
        tracked = read_tracker(engine_root)
    except TrackerError as exc:
        return str(exc)
    if tracked is None:
        return f"{tracker_path(engine_root)} is missing"
    engine = engine_root / f"iter_{tracked:07d}"
    try:
        meta = read_json(engine / "engine_meta.json", "engine metadata")
        tp, pp, dp = int(meta["tp"]), int(meta["pp"]), int(meta["dp"])
    except (FileFormatError, KeyError, TypeError, ValueError) as exc:
        return str(exc) if isinstance(exc, FileFormatError) else f"{engine / 'engine_meta.json'} is incomplete ({exc})"
    for t in range(tp):
        for p in range(pp):
            for d in range(dp):
                shard = engine / f"rank_tp{t:02d}_pp{p:03d}_dp{d:03d}.pt"
                if not shard.is_file():
                    return f"{shard} is missing"
                try:  # torch.save writes a zip; a truncated one has lost its central directory
                    with zipfile.ZipFile(shard) as z:
                        z.infolist()
                except (zipfile.BadZipFile, OSError) as exc:
                    return f"{shard} is damaged or truncated ({exc}; {shard.stat().st_size} bytes)"
    return None


def _iterations(root: Path) -> list[int]:
    its = []
    for p in root.glob("iter_*"):
        m = re.fullmatch(r"iter_(\d{7})", p.name)
        if m and p.is_dir():
            its.append(int(m.group(1)))
    return sorted(its)


def _pick_checkpoint(cfg, source: str, log) -> tuple[int, Optional[int]]:
    """(iteration to resume, the damaged newest one it fell back from or None)."""
    mt = cfg.megatron_training
    root = Path(source)
    key = "megatron_training.load" if mt.load else "megatron_training.save"
    newest: Optional[int] = None
    why = ""
    try:
        newest = read_tracker(root)
        if newest is None:
            why = f"{tracker_path(root)} is missing"
    except TrackerError as exc:
        why = str(exc)
    if newest is not None:
        why = checkpoint_problem(root, newest) or ""
        if not why:
            return newest, None
    intact = [it for it in reversed(_iterations(root)) if it != newest and not checkpoint_problem(root, it)]
    if not mt.resume_fallback:
        fix = (f"set megatron_training.resume_fallback=true to resume from iteration {intact[0]}, the newest intact one"
               if intact else "no intact earlier iteration exists: start fresh with another save directory")
        raise ConfigError([Problem(key, source, f"the newest checkpoint is damaged: {why}", fix)])
    if not intact:
        raise ConfigError([Problem(key, source, f"the newest checkpoint is damaged ({why}) and no earlier one is intact",
                                   "start fresh with another save directory")])
    log(f"WARNING: {why}; falling back to iteration {intact[0]}, the newest intact checkpoint "
        "(megatron_training.resume_fallback=true)")
    return intact[0], newest


def _saved_config(path: Path) -> tuple[Optional[dict], Optional[str]]:
    state = read_json(path / "run_state.json", "run state")
    return state.get("config"), state.get("config_hash")


def plan_resume(cfg, log=print) -> Optional[ResumePlan]:
    """The checkpoint a run resumes from, checked and compared; None when the run starts fresh."""
    source = resume_source(cfg)
    if not source:
        return None
    mt = cfg.megatron_training
    iteration, damaged = _pick_checkpoint(cfg, source, log)
    path = iteration_dir(source, iteration)
    key = "megatron_training.load" if mt.load else "megatron_training.save"
    if iteration > mt.train_iters:
        raise ConfigError([Problem("megatron_training.train_iters", mt.train_iters,
                                   f"{key}={source!r} already holds iteration {iteration}, past train_iters",
                                   f"raise train_iters above {iteration} to train further, or save to another directory")])
    if iteration == mt.train_iters:
        log(f"note: {key}={source!r} already holds iteration {iteration} = megatron_training.train_iters: "
            "the run is complete and nothing is trained; raise train_iters to continue it")
    plan = ResumePlan(source, iteration, path, fell_back_from=damaged)
    saved, saved_hash = _saved_config(path)
    new = flatten(dataclasses.asdict(cfg))
    if saved is None:
        if saved_hash and saved_hash != config_hash(cfg) and not mt.resume_override:
            raise ConfigError([Problem(key, source, f"{path / 'run_state.json'} records only a config hash "
                                                    f"({saved_hash}), and the new config's differs",
                                       "resume with the original config, or set megatron_training.resume_override=true")])
        return plan
    from mindspeed_rl.config.schema import GRPOConfig

    # a key the saved config predates counts as its default then
    old = {**flatten(dataclasses.asdict(GRPOConfig())), **flatten(saved)}
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            (plan.allowed if k in ALLOWED else plan.overridden)[k] = (old.get(k, "<unset>"), new.get(k, "<unset>"))
    if plan.overridden and not mt.resume_override:
        raise ConfigError([Problem(k, b, f"differs from the checkpoint's config ({path / 'run_state.json'}: {a!r}); "
                                         "the resumed run would not continue the saved one exactly",
                                   f"set it back to {a!r}, or set megatron_training.resume_override=true to resume with "
                                   "the change")
                           for k, (a, b) in plan.overridden.items()], source=f"resume from {path}")
    return plan


def describe(plan: ResumePlan) -> str:
    lines = [f"resuming from {plan.path} (iteration {plan.iteration})"]
    for k, (a, b) in plan.allowed.items():
        lines.append(f"  changed (allowed): {k}: {a!r} -> {b!r}")
    for k, (a, b) in plan.overridden.items():
        note = "; the restored optimizer scheduler keeps the saved value" if k in SCHEDULER_KEYS else ""
        lines.append(f"  WARNING changed under megatron_training.resume_override: {k}: {a!r} -> {b!r}{note}")
    return "\n".join(lines)

