"""Rule-based rewards: answer extraction, math equivalence, format/shaping rewards, batch scoring.

No torch or Megatron import happens in this package.

Stable API used by the trainer::

    from mindspeed_rl.rewards import RewardScorer

    scorer = RewardScorer(functions=["acc", "strict_format"],   # rl_config.verifier_function
                          weights=[1.0, 1.0],                    # rl_config.verifier_weight
                          num_workers=2, timeout_s=10.0, timeout_score=0.0)
    totals, per_fn, metrics = scorer.score(responses, golds, extra=None)
    scorer.close()

- ``totals[i]`` = sum_k weight_k * reward_k(responses[i], golds[i]);
  ``per_fn[name][i]`` = that function's reward; ``metrics`` has ``samples``, ``timeouts``,
  ``errors``, ``extraction_failures`` (no final answer found), ``seconds``, ``samples_per_s``,
  ``reward/mean`` and ``reward/<name>/mean``.
- ``extra`` (optional, one dict per sample) is passed to every function: e.g.
  ``response_length`` (tokens, for ``cosine``), ``target``/``numbers`` (``countdown``).
  ``function_kwargs`` (constructor) gives defaults for all samples (``cosine_max_len``,
  ``repetition_ngram_size``, ...); ``extraction=ExtractionConfig(...)`` sets stop words and the
  final-number fallback.
- Each sample runs in a worker process with a hard timeout: a sample that runs past
  ``timeout_s`` gets ``timeout_score`` for every function, its worker is killed (SIGKILL) and
  replaced by a pre-started spare. No signals are used in the caller, so ``score`` may be
  called from any thread (concurrent calls are serialised). ``num_workers=0`` scores in-process
  without a timeout (debugging only).
- Golds may be bare answers or full solutions (last ``\\boxed{}`` or GSM8K ``#### x`` is used).

Built-in functions (``available_rewards()``): ``acc``, ``format``, ``strict_format``,
``base_acc``, ``reasoning_steps``, ``cosine``, ``repetition``, ``countdown``. Add your own with
``@register_reward("name")`` in an importable module, or name ``"package.module:function"``.

Lower-level pieces: ``extract_answer(response, ExtractionConfig())`` and
``is_equivalent(pred, gold)``.
"""
from .equivalence import is_equivalent
from .extraction import Extraction, ExtractionConfig, extract_answer
from .registry import available_rewards, get_reward, register_reward
from .scorer import RewardScorer, parse_weighted_names

__all__ = [
    "RewardScorer",
    "ExtractionConfig",
    "Extraction",
    "extract_answer",
    "is_equivalent",
    "register_reward",
    "get_reward",
    "available_rewards",
    "parse_weighted_names",
]
