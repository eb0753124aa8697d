"""Where the weights come from: a HF directory as is, or a Megatron checkpoint converted on the fly.

A Megatron checkpoint (a ``tools/convert`` output, a GRPO run's ``megatron_training.save``
directory or one of its ``iter_N`` directories) is converted with
``mindspeed_rl.models.convert.mcore_to_hf`` into a temporary HF directory that is deleted
afterwards. Converted and run checkpoints keep the HF config and tokenizer in their
``hf_config/``; a checkpoint without them needs ``tokenizer=`` (and the converter's
``hf_config_dir``) from the user. A legacy MindSpeed-LLM / Megatron checkpoint (no
``convert_meta.json``) needs ``hf_config_dir`` (its architecture and tokenizer).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

from mindspeed_rl.utils.fs import TRACKER_FILE

_ITER_RE = re.compile(r"^iter_(\d+)$")


class ModelSourceError(ValueError):
    """The model path is neither a HF directory nor a Megatron checkpoint; says what was found."""


def megatron_iterations(path: str) -> list[int]:
    if not os.path.isdir(path):
        return []
    return sorted(int(m.group(1)) for m in (_ITER_RE.match(n) for n in os.listdir(path)) if m)


def is_megatron_checkpoint(path: str) -> bool:
    from mindspeed_rl.models.sources import RUN_STATE

    return (os.path.isfile(os.path.join(path, TRACKER_FILE)) or os.path.isfile(os.path.join(path, RUN_STATE))
            or bool(megatron_iterations(path)))


def is_hf_directory(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json"))


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_signature(path: str, max_files: int = 4096) -> Dict[str, list]:
    """``{relative weight file: [size, mtime_ns]}``: cheap evidence that the weights behind a path
    changed (a checkpoint rewritten in place must not resume an earlier run's samples)."""
    out: Dict[str, list] = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(WEIGHT_SUFFIXES) or name == TRACKER_FILE:
                full = os.path.join(root, name)
                st = os.stat(full)
                out[os.path.relpath(full, path)] = [st.st_size, st.st_mtime_ns]
                if len(out) >= max_files:
                    return out
    return out


@contextmanager
def hf_model_dir(path: str, tokenizer: Optional[str] = None, iteration: Optional[int] = None,
                 hf_config_dir: Optional[str] = None, work_dir: Optional[str] = None,
                 log=print) -> Iterator[Dict[str, Any]]:
    """Yield ``{"hf_dir", "tokenizer", "path", "source", ...}`` for a HF dir or a Megatron checkpoint."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise ModelSourceError(f"model={path}: no such directory; pass a HF model directory or a Megatron checkpoint")
    if is_hf_directory(path) and not is_megatron_checkpoint(path):
        yield {"path": path, "source": "hf", "hf_dir": path, "tokenizer": tokenizer or path,
               "weights": weights_signature(path)}
        return
    if not is_megatron_checkpoint(path):
        raise ModelSourceError(
            f"model={path}: neither a HF model directory (no config.json) nor a Megatron checkpoint "
            f"(no latest_checkpointed_iteration.txt or iter_* directories); found {sorted(os.listdir(path))[:10]}")
    from mindspeed_rl.models.convert import mcore_to_hf
    from mindspeed_rl.models.sources import open_megatron_checkpoint

    if hf_config_dir is not None:
        hf_config_dir = os.path.abspath(os.path.expanduser(os.fspath(hf_config_dir)))
    source = open_megatron_checkpoint(path, iteration, log=log, hf_config=hf_config_dir)
    side = hf_config_dir or source.side_dir
    tok = tokenizer or side
    if tok is None:
        raise ModelSourceError(f"model={path}: the checkpoint has no hf_config/ with a tokenizer; "
                               "pass tokenizer=<HF tokenizer directory> (and hf_config_dir for a run checkpoint)")
    tmp_root = tempfile.mkdtemp(prefix="mindspeed_rl_eval_", dir=work_dir)
    try:
        hf_dir = os.path.join(tmp_root, "hf")
        log(f"converting Megatron checkpoint {source.describe()} to HF in {hf_dir}")
        mcore_to_hf(path, hf_dir, hf_config_dir=hf_config_dir, iteration=source.iteration, quiet=True)
        yield {"path": path, "source": {"converted": "megatron"}.get(source.kind, source.kind),
               "iteration": source.iteration, "hf_dir": hf_dir, "tokenizer": tok,
               "weights": weights_signature(source.weights_dir)}
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
