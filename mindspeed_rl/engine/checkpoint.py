"""Run checkpoints of a MegatronEngine: model, optimizer, lr scheduler, RNG and step.

Layout (Megatron's legacy per-rank idea, one file per rank)::

    SAVE_DIR/
      latest_checkpointed_iteration.txt
      iter_0000012/
        engine_meta.json                         # tp, pp, dp, dtype, distributed optimizer, step
        rank_tp00_pp000_dp000.pt                 # one per rank

Each rank file holds its RNG states and the step. The model shard is written by DP rank 0 of
each (tp, pp) position; the optimizer by DP rank 0 too, or by every DP rank with the distributed
optimizer (each holds a different shard of the state). Optimizer state is stored as the inner
torch optimizer's ``state_dict`` plus the fp32 main parameters it steps on: that works with plain
torch Adam on CPU, where megatron's ``dist_checkpointing`` of a distributed optimizer does not
(its sharded optimizer state assumes the fused CUDA optimizers), and with every optimizer flavour
(fp32, mixed precision, distributed). The price: a run checkpoint resumes only at the same
TP/PP/DP layout (checked on load); to change layout, export HF weights and convert again.

Writes are atomic: every rank writes into ``.iter_N.tmp-<pid of rank 0>``, and rank 0 renames
the directory into place and then updates the tracker file (itself via a temp file + rename).
"""
from __future__ import annotations

import json
import os
import random
import shutil
from typing import Optional

import torch
import torch.distributed as dist

from mindspeed_rl.engine.wrappers import unwrap
from mindspeed_rl.utils.fs import TrackerError, atomic_path, read_tracker, replace_dir, tracker_path, write_tracker

META = "engine_meta.json"


def _rank_name(tp: int, pp: int, dp: int) -> str:
    return f"rank_tp{tp:02d}_pp{pp:03d}_dp{dp:03d}.pt"


def _iter_dir(root: str, iteration: int) -> str:
    return os.path.join(root, f"iter_{iteration:07d}")


def _rng_state(engine) -> dict:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "tracker": get_cuda_rng_tracker().get_states()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    if engine.platform.device_type != "cpu":
        state["device"] = getattr(torch, engine.platform.device_type).get_rng_state()
    return state


def _set_rng_state(engine, state: dict) -> None:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    get_cuda_rng_tracker().set_states(state["tracker"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "device" in state and engine.platform.device_type != "cpu":
        getattr(torch, engine.platform.device_type).set_rng_state(state["device"])


def _inner_optimizers(optimizer):
    return getattr(optimizer, "chained_optimizers", None) or [optimizer]


def _optimizer_state(engine) -> dict:
    out = []
    for opt in _inner_optimizers(engine.optimizer):
        inner = opt.optimizer
        mains = [p.detach().cpu().clone() for g in inner.param_groups for p in g["params"]]
        out.append({"inner": inner.state_dict(), "main_params": mains})
    return {"optimizers": out, "scheduler": engine.scheduler.state_dict()}


def _load_optimizer_state(engine, state: dict) -> None:
    opts = _inner_optimizers(engine.optimizer)
    if len(opts) != len(state["optimizers"]):
        raise ValueError("checkpoint optimizer structure differs from the engine's")
    for opt, saved in zip(opts, state["optimizers"]):
        inner = opt.optimizer
        params = [p for g in inner.param_groups for p in g["params"]]
        if len(params) != len(saved["main_params"]):
            raise ValueError("checkpoint optimizer has a different number of parameters (layout changed?)")
        with torch.no_grad():
            for p, v in zip(params, saved["main_params"]):
                if p.shape != v.shape:
                    raise ValueError(f"optimizer main param shape {tuple(v.shape)} != {tuple(p.shape)}")
                p.copy_(v)
        inner.load_state_dict(saved["inner"])
    engine.scheduler.load_state_dict(state["scheduler"])


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _meta(engine) -> dict:
    c = engine.config
    return {"tp": engine.tp_size, "pp": engine.pp_size, "dp": engine.dp_size, "params_dtype": c.params_dtype,
            "use_distributed_optimizer": c.use_distributed_optimizer, "forward_only": c.forward_only,
            "num_layer_list": list(c.num_layer_list) if c.num_layer_list else None,
            "padded_vocab_size": engine.padded_vocab, "step": engine.step, "hf_config": engine.bridge.hf_config}


def save_engine_checkpoint(engine, save_dir: str, iteration: int) -> str:
    engine.onload()  # optimizer state parked for the rollout must be in place to be written
    save_dir = os.path.abspath(save_dir)
    final = _iter_dir(save_dir, iteration)
    # every rank must agree on the temp name: rank 0's pid, broadcast
    tag = torch.tensor([os.getpid()], dtype=torch.int64)
    if dist.get_world_size() > 1:
        dist.broadcast(tag, src=0)
    tmp = os.path.join(save_dir, f".iter_{iteration:07d}.tmp-{int(tag)}")
    if dist.get_rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    _barrier()
    obj = {"step": engine.step, "iteration": iteration, "rng": _rng_state(engine)}
    if engine.dp_rank == 0:
        obj["model"] = {k: v.detach().cpu() for k, v in unwrap(engine.model).state_dict().items()
                        if isinstance(v, torch.Tensor)}
    if engine.optimizer is not None and (engine.dp_rank == 0 or engine.config.use_distributed_optimizer):
        obj["optimizer"] = _optimizer_state(engine)
    with atomic_path(os.path.join(tmp, _rank_name(engine.tp_rank, engine.pp_rank, engine.dp_rank))) as part:
        torch.save(obj, part)
    _barrier()
    if dist.get_rank() == 0:
        with open(os.path.join(tmp, META), "w", encoding="utf-8") as f:
            json.dump(_meta(engine), f, indent=1)
        replace_dir(tmp, final)
        write_tracker(save_dir, iteration)
    _barrier()
    return final


def load_engine_checkpoint(engine, load_dir: str, iteration: Optional[int] = None) -> int:
    """Restore model, optimizer, scheduler, RNG and step; returns the iteration loaded."""
    if iteration is None:
        try:
            iteration = read_tracker(load_dir)
        except TrackerError:
            iteration = None
        if iteration is None:
            raise FileNotFoundError(f"{tracker_path(load_dir)}: missing or unreadable; "
                                    f"{load_dir} has no finished run checkpoint")
    root = _iter_dir(load_dir, iteration)
    with open(os.path.join(root, META), encoding="utf-8") as f:
        meta = json.load(f)
    want = {"tp": engine.tp_size, "pp": engine.pp_size, "dp": engine.dp_size,
            "use_distributed_optimizer": engine.config.use_distributed_optimizer}
    got = {k: meta[k] for k in want}
    if got != want and not (engine.optimizer is None and (got["tp"], got["pp"]) == (want["tp"], want["pp"])):
        raise ValueError(f"{root}: saved with {got}, the engine runs {want}; run checkpoints resume only "
                         "at the same layout (export HF weights and convert to change it)")
    own = torch.load(os.path.join(root, _rank_name(engine.tp_rank, engine.pp_rank, engine.dp_rank)),
                     map_location="cpu", weights_only=False)
    dp0 = own if engine.dp_rank == 0 else torch.load(
        os.path.join(root, _rank_name(engine.tp_rank, engine.pp_rank, 0)), map_location="cpu", weights_only=False)
    model = unwrap(engine.model)
    missing, unexpected = model.load_state_dict(dp0["model"], strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise ValueError(f"{root}: model state does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if engine.optimizer is not None:
        src = own if engine.config.use_distributed_optimizer else dp0
        if "optimizer" not in src:
            raise ValueError(f"{root}: no optimizer state (saved by a forward-only engine?)")
        _load_optimizer_state(engine, src["optimizer"])
    _set_rng_state(engine, own["rng"])
    engine.step = int(own["step"])
    _barrier()
    return iteration
