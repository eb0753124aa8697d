"""Where Megatron weights are read from for export: a converted checkpoint or a GRPO run checkpoint.

Two on-disk formats hold Megatron weights:

* converted (``tools/convert`` / ``hf_to_mcore``): ``convert_meta.json``, ``hf_config/`` and
  ``iter_N/mp_rank_XX[_YYY]/model_optim_rng.pt`` with canonical names (see ``mcore_checkpoint``);
* run (``megatron_training.save``, ``trainer/run_checkpoint`` + ``engine/checkpoint``)::

      SAVE_DIR/latest_checkpointed_iteration.txt
      SAVE_DIR/iter_N/run_state.json            # iteration, sampler, config hash, "export" info
      SAVE_DIR/iter_N/hf_config/                # config.json, tokenizer, generation config
      SAVE_DIR/iter_N/actor/latest_checkpointed_iteration.txt   # the engine's optimizer step S
      SAVE_DIR/iter_N/actor/iter_S/engine_meta.json             # tp, pp, dp, num_layer_list, vocab, hf_config
      SAVE_DIR/iter_N/actor/iter_S/rank_tpXX_ppYYY_dpZZZ.pt     # model on dp 0 (+ optimizer, RNG)

* legacy (MindSpeed-LLM's / Megatron's own converter): ``latest_checkpointed_iteration.txt``
  (an iteration or ``release``), ``iter_N/`` or ``release/``, ``mp_rank_XX[_YYY]/model_optim_rng.pt``
  with TE names and a pickled ``args`` Namespace, and no ``convert_meta.json``: readable when the
  model's HF config is given (``hf_config``); the layout is inferred from the rank files
  (``mcore_checkpoint.infer_legacy_meta``).

``open_megatron_checkpoint`` reads any of them (the save directory or one ``iter_N`` of a run) into a
``MegatronSource`` that the converter streams from at the layout the weights were written with.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from mindspeed_rl.models import mcore_checkpoint as mc
from mindspeed_rl.models import naming
from mindspeed_rl.models.errors import CheckpointError
from mindspeed_rl.utils.fs import TrackerError, read_tracker

RUN_STATE = "run_state.json"
ENGINE_META = "engine_meta.json"
ACTOR_DIR = "actor"
SIDE_DIR = "hf_config"
_ITER_RE = re.compile(r"^iter_(\d+)$")


def iteration_dirs(root: str) -> list[int]:
    """Iterations with a finished ``iter_N`` directory (temp and ``.old`` directories excluded)."""
    if not os.path.isdir(root):
        return []
    return sorted(int(m.group(1)) for m in (_ITER_RE.match(n) for n in os.listdir(root))
                  if m and os.path.isdir(os.path.join(root, m.group(0))))


def is_run_checkpoint(path: str) -> bool:
    """A run save directory (some ``iter_N/run_state.json``) or one of its ``iter_N`` directories."""
    if os.path.isfile(os.path.join(path, RUN_STATE)):
        return True
    if os.path.isfile(os.path.join(path, mc.META)):
        return False
    return any(os.path.isfile(os.path.join(mc.iteration_dir(path, i), RUN_STATE)) for i in iteration_dirs(path))


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError:
        raise CheckpointError(f"{path}: missing") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None


def _read_tracker(root: str) -> Optional[int]:
    """The iteration ``root``'s tracker names, None without a tracker; damage is a CheckpointError."""
    try:
        return read_tracker(root)
    except TrackerError as exc:
        raise CheckpointError(str(exc)) from None


@dataclass
class MegatronSource:
    """Everything the converter needs about one iteration of a Megatron checkpoint."""

    kind: str  # "converted" | "run" | "legacy"
    root: str  # the checkpoint directory (for a run: the save directory)
    iteration: int | str  # legacy may be "release"; converted: the checkpoint iteration; run: the run iteration (iter_N)
    meta: dict  # tp, pp, num_layer_list, padded_vocab_size, params_dtype, hf_config
    weights_dir: str  # the directory holding this iteration's weight files
    side_dir: Optional[str]  # config.json / tokenizer / generation config copied with the checkpoint
    export: dict = field(default_factory=dict)  # run checkpoints: stop ids, template, tokenizer source

    def rank_path(self, tp_rank: int, pp_rank: int) -> str:
        if self.kind in ("converted", "legacy"):
            return mc.rank_file(self.root, self.iteration, tp_rank, pp_rank, int(self.meta["pp"]))
        # the model shard of each (tp, pp) position is written by its data-parallel rank 0
        return os.path.join(self.weights_dir, f"rank_tp{tp_rank:02d}_pp{pp_rank:03d}_dp000.pt")

    def load_model_state(self, path: str) -> dict:
        """The canonical-name model state dict of one rank file, memory-mapped (read lazily)."""
        import torch

        if self.kind == "converted":
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["model"]
        if self.kind == "legacy":  # weights only, Megatron's args Namespace allowed (one loader with training)
            obj = mc.load_legacy_rank(path)
            if "model" not in obj:
                raise CheckpointError(f"{path}: no model weights in this rank file")
            return mc.canonical_state_dict(obj["model"])
        # Engine rank files also hold optimizer and RNG state (numpy arrays among them), which
        # torch's weights-only unpickler refuses; they are the suite's own files, as on resume.
        obj = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        if "model" not in obj:
            raise CheckpointError(f"{path}: no model weights in this rank file")
        return {naming.from_te_name(k): v for k, v in obj["model"].items()
                if isinstance(v, torch.Tensor) and not naming.is_extra_state(k)}

    def describe(self) -> str:
        m = self.meta
        kind = {"run": "GRPO run", "legacy": "MindSpeed-LLM / Megatron legacy"}.get(self.kind, "converted")
        return (f"{self.root} ({kind} checkpoint, iteration {self.iteration}, tp={m['tp']} pp={m['pp']} "
                f"layers/stage={m.get('num_layer_list') or 'even'} dtype={m.get('params_dtype')})")


def _choose_iteration(root: str, iteration, complete: Callable[[int], bool], log, allow_release: bool = False):
    """The iteration to read: the requested one, the tracker's, else the newest finished ``iter_N``;
    with ``allow_release`` Megatron's ``release`` tracker text / ``release/`` directory too."""
    available = [i for i in iteration_dirs(root) if complete(i)]
    has_release = allow_release and os.path.isdir(mc.iteration_dir(root, mc.RELEASE))
    if has_release:
        available = available + [mc.RELEASE]
    how = "requested"
    if iteration is None:
        if allow_release:
            iteration = mc.read_tracker(root, allow_release=True) if os.path.isfile(os.path.join(root, mc.TRACKER)) \
                else None
        else:
            iteration = _read_tracker(root)
        how = f"named by {mc.TRACKER}"
    if iteration is not None:
        if not os.path.isdir(mc.iteration_dir(root, iteration)):
            raise CheckpointError(f"{mc.iteration_dir(root, iteration)}: no such iteration in {root} ({how}); "
                                  f"available: {available or 'none'} (choose one with --iteration)")
        return iteration
    if not available:
        raise CheckpointError(f"{root}: no {mc.TRACKER} and no finished iter_* directory; "
                              "not a finished Megatron checkpoint")
    if available == [mc.RELEASE]:
        log(f"{root}: no {mc.TRACKER}; using the {mc.RELEASE}/ directory")
        return mc.RELEASE
    newest = [i for i in available if i != mc.RELEASE][-1]
    log(f"{root}: no {mc.TRACKER}; using the latest iteration directory, iter_{newest:07d}")
    return newest


def _open_run(root: str, iteration: Optional[int], log) -> MegatronSource:
    if os.path.isfile(os.path.join(root, RUN_STATE)):  # one iteration directory of a run
        state = _read_json(os.path.join(root, RUN_STATE))
        iter_dir = root
        root = os.path.dirname(root)
        if iteration is not None and iteration != int(state.get("iteration", iteration)):
            raise CheckpointError(f"{iter_dir}: holds iteration {state.get('iteration')}, "
                                  f"not the requested {iteration}; pass the save directory to choose")
        iteration = int(state["iteration"])
    else:
        iteration = _choose_iteration(root, iteration,
                                      lambda i: os.path.isfile(os.path.join(mc.iteration_dir(root, i), RUN_STATE)), log)
        iter_dir = mc.iteration_dir(root, iteration)
        state = _read_json(os.path.join(iter_dir, RUN_STATE))
    actor = os.path.join(iter_dir, ACTOR_DIR)
    step = _read_tracker(actor)
    if step is None:
        raise CheckpointError(f"{os.path.join(actor, mc.TRACKER)}: missing; {iter_dir} holds no actor weights")
    weights_dir = mc.iteration_dir(actor, step)
    engine = _read_json(os.path.join(weights_dir, ENGINE_META))
    missing = [k for k in ("tp", "pp", "padded_vocab_size", "params_dtype", "hf_config") if k not in engine]
    if missing:
        raise CheckpointError(f"{os.path.join(weights_dir, ENGINE_META)}: lacks {missing}")
    meta = {k: engine[k] for k in ("tp", "pp", "padded_vocab_size", "params_dtype", "hf_config")}
    meta["num_layer_list"] = engine.get("num_layer_list")
    side = os.path.join(iter_dir, SIDE_DIR)
    return MegatronSource("run", root, iteration, meta, weights_dir, side if os.path.isdir(side) else None,
                          dict(state.get("export") or {}))


def _open_converted(root: str, iteration: Optional[int], log) -> MegatronSource:
    meta = mc.read_meta(root)
    iteration = _choose_iteration(root, iteration, lambda i: True, log)
    side = os.path.join(root, mc.HF_CONFIG_DIR)
    return MegatronSource("converted", root, iteration, meta, mc.iteration_dir(root, iteration),
                          side if os.path.isdir(side) else None)


def is_legacy_checkpoint(path: str) -> bool:
    """Megatron's ``iter_N/`` or ``release/`` with ``mp_rank_*`` directories and no convert_meta.json."""
    if os.path.isfile(os.path.join(path, mc.META)):
        return False
    dirs = [mc.iteration_dir(path, i) for i in iteration_dirs(path)] + [mc.iteration_dir(path, mc.RELEASE)]
    return any(os.path.isdir(d) and any(mc.MP_RANK_RE.match(n) for n in os.listdir(d)) for d in dirs)


def _open_legacy(root: str, iteration, hf_config, log) -> MegatronSource:
    if hf_config is None:
        raise CheckpointError(
            f"{root}: a Megatron checkpoint without {mc.META} (as MindSpeed-LLM's converter writes it); its "
            "architecture comes from the model's HF config: pass --hf-config-dir <HF model directory> "
            "(tools/convert/convert_ckpt.py mcore2hf, cli/evaluate.py; hf_config_dir= in Python)")
    iteration = _choose_iteration(root, iteration, lambda i: True, log, allow_release=True)
    meta = mc.infer_legacy_meta(root, hf_config, iteration)
    side = hf_config if isinstance(hf_config, (str, os.PathLike)) and os.path.isdir(hf_config) else None
    return MegatronSource("legacy", root, iteration, meta, mc.iteration_dir(root, iteration),
                          os.fspath(side) if side else None)


def open_megatron_checkpoint(path: str, iteration=None, log=print, hf_config=None) -> MegatronSource:
    """A converted checkpoint, a run save directory, one run ``iter_N`` directory or (with
    ``hf_config``, an HF directory or config dict) a legacy MindSpeed-LLM / Megatron checkpoint, at
    ``iteration`` (default: the tracker's, else the newest finished one)."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: no such directory")
    if is_run_checkpoint(path):
        return _open_run(path, iteration, log)
    if os.path.isfile(os.path.join(path, mc.META)):
        return _open_converted(path, iteration, log)
    if is_legacy_checkpoint(path):
        return _open_legacy(path, iteration, hf_config, log)
    found = sorted(os.listdir(path))[:10]
    raise CheckpointError(
        f"{path}: neither a converted Megatron checkpoint (no {mc.META}) nor a GRPO run checkpoint "
        f"(no iter_*/{RUN_STATE}); found {found}. Pass a tools/convert output or megatron_training.save")
