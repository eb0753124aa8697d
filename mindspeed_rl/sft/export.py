"""Export an SFT run checkpoint (or any Megatron checkpoint) as a HF directory, with the suite's
converter (``models.convert.mcore_to_hf``: the same mapping as ``tools/convert/convert_ckpt.py
mcore2hf``, which reads the same checkpoints)."""
from __future__ import annotations

from typing import Optional


def export_hf(checkpoint: str, out_dir: str, iteration: Optional[int] = None, dtype: Optional[str] = None,
              overwrite: bool = False, quiet: bool = True) -> dict:
    """``checkpoint``: an SFT/GRPO ``save`` directory (latest iteration unless ``iteration``), one of
    its ``iter_N`` directories, or a converted checkpoint; ``dtype`` (fp32/bf16/fp16) defaults to the
    training dtype. Writes safetensors, config.json, tokenizer and generation config."""
    from mindspeed_rl.models.convert import mcore_to_hf

    return mcore_to_hf(checkpoint, out_dir, dtype=dtype, iteration=iteration, overwrite=overwrite, quiet=quiet)
