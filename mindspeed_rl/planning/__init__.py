"""Plans made from the config alone, before anything is launched (``cli/train_grpo.py --dry-run``)."""
from mindspeed_rl.planning.memory_plan import MemoryPlan, plan_memory

__all__ = ["MemoryPlan", "plan_memory"]
