"""Build a GRPO run checkpoint on disk without Ray: the engine's file layout (run_checkpoint +
engine/checkpoint), filled from a converted checkpoint, so export can be tested at any TP/PP in
seconds. The real engine's files are covered by tests/convert/test_run_export_e2e.py."""
import json
import os

import numpy as np
import torch

from mindspeed_rl.models import naming
from mindspeed_rl.models.convert import copy_side_files, hf_to_mcore
from mindspeed_rl.models import mcore_checkpoint as mc


def _write_tracker(root, value):
    with open(os.path.join(root, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write(str(value))


def add_run_iteration(hf, save_dir, iteration, tp=1, pp=1, dp=1, scale=1.0, te_names=False, side=True,
                      stop_token_ids=(7,)):
    """Write ``save_dir/iter_N`` as the trainer would, with weights = HF weights x ``scale``."""
    conv = os.path.join(str(save_dir), f".conv_{iteration}")
    hf_to_mcore(str(hf), conv, tp=tp, pp=pp, quiet=True)
    meta = mc.read_meta(conv)
    step = 2 * iteration  # the engine counts optimizer steps, not iterations
    it_dir = os.path.join(str(save_dir), f"iter_{iteration:07d}")
    eng = os.path.join(it_dir, "actor", f"iter_{step:07d}")
    os.makedirs(eng)
    for p in range(pp):
        for t in range(tp):
            sd, _ = mc.load_rank_state_dict(conv, t, p, mmap=False)
            model = {}
            for k, v in sd.items():
                model[naming.to_te_name(k) if te_names else k] = (v * scale).to(v.dtype)
            model["decoder.layers.0.self_attention.core_attention._extra_state"] = torch.zeros(3)
            for d in range(dp):
                obj = {"step": step, "iteration": step, "rng": {"numpy": np.random.get_state(), "torch": torch.get_rng_state()},
                       "optimizer": {"optimizers": [{"main_params": [torch.ones(2)]}]}}
                if d == 0:
                    obj["model"] = model
                torch.save(obj, os.path.join(eng, f"rank_tp{t:02d}_pp{p:03d}_dp{d:03d}.pt"))
    with open(os.path.join(eng, "engine_meta.json"), "w") as f:
        json.dump({"tp": tp, "pp": pp, "dp": dp, "params_dtype": meta["params_dtype"],
                   "use_distributed_optimizer": False, "forward_only": False, "num_layer_list": None,
                   "padded_vocab_size": meta["padded_vocab_size"], "step": step, "hf_config": meta["hf_config"]}, f)
    _write_tracker(os.path.join(it_dir, "actor"), step)
    if side:
        copy_side_files(str(hf), os.path.join(it_dir, "hf_config"))
    with open(os.path.join(it_dir, "run_state.json"), "w") as f:
        json.dump({"iteration": iteration, "sampler": {}, "config_hash": "x",
                   "export": {"stop_token_ids": list(stop_token_ids), "template": "qwen_r1"}}, f)
    _write_tracker(str(save_dir), iteration)
    import shutil

    shutil.rmtree(conv)
    return it_dir
