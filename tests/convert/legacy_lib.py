"""Builds a checkpoint the way MindSpeed-LLM's converter writes one (Megatron's legacy layout), for the
legacy-checkpoint tests of training load, export and evaluation."""
import argparse
import glob
import os
import shutil

import torch

from mindspeed_rl.models import mcore_checkpoint as mc
from mindspeed_rl.models import naming


def as_mindspeed_llm(ours: str, out: str, release: bool = False) -> str:
    """Our converter's output rewritten the way Megatron / MindSpeed-LLM save it: TE names, a TE
    ``_extra_state`` per layer norm, ``args``, no ``mindspeed_rl`` entry, no convert_meta.json / hf_config.
    ``release``: the iteration directory is ``release/`` and the tracker says ``release``."""
    shutil.copytree(ours, out)
    os.remove(os.path.join(out, mc.META))
    shutil.rmtree(os.path.join(out, mc.HF_CONFIG_DIR))
    for path in glob.glob(os.path.join(out, "iter_*", "mp_rank_*", mc.RANK_FILE)):
        obj = torch.load(path, weights_only=True)
        model = {naming.to_te_name(k): v.clone() for k, v in obj["model"].items()}
        model.update({k.rsplit(".", 1)[0] + "._extra_state": None for k in list(model) if "layer_norm_weight" in k})
        torch.save({"model": model, "checkpoint_version": 3.0, "iteration": 1,
                    "args": argparse.Namespace(tensor_model_parallel_size=2, num_layers=4)}, path)
    if release:
        (it_dir,) = glob.glob(os.path.join(out, "iter_*"))
        os.rename(it_dir, os.path.join(out, mc.RELEASE))
        with open(os.path.join(out, mc.TRACKER), "w", encoding="utf-8") as f:
            f.write(mc.RELEASE)
    return out
