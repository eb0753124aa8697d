"""A user reward registered from an importable module (used by test_scorer)."""
from mindspeed_rl.rewards import register_reward


@register_reward("length_le_10")
def short_answer(response, gold, extra):
    return 1.0 if len(response) <= 10 else 0.0
