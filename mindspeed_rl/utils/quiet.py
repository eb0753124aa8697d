"""One place that silences the third-party warnings every worker prints at import and build time.

They say nothing a user can act on: megatron-core's "Transformer Engine and Apex are not installed,
falling back" on a machine that is meant to run without them (CPU, or Ascend through MindSpeed),
its "full scope is deprecated" from its own defaults, and library Deprecation/Future warnings.
Warnings raised by this package are kept. ``MINDSPEED_RL_SHOW_WARNINGS=1`` shows everything.
"""
from __future__ import annotations

import os
import warnings

THIRD_PARTY = ("megatron", "transformers", "torch", "vllm", "ray", "hydra", "omegaconf", "apex", "transformer_engine",
               "mindspeed", "torch_npu", "datasets", "pyarrow")
MESSAGES = (
    r".*Transformer Engine and Apex are not installed.*",
    r".*Apex is not installed.*",
    r".*full scope is deprecated.*",
)


def quiet_third_party_warnings() -> bool:
    """Install the filters (idempotent); False when the user asked to see every warning."""
    if os.environ.get("MINDSPEED_RL_SHOW_WARNINGS", "") not in ("", "0"):
        return False
    for message in MESSAGES:
        warnings.filterwarnings("ignore", message=message)
    for module in THIRD_PARTY:
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{module}(\..*)?$")
    return True
