"""Evaluation metrics over sampled answers: pass@1, avg@k, pass@k (unbiased), maj@k, breakdowns.

Inputs are per problem: the correctness of each of its ``n`` samples, in sampling order, and for
maj@k the normalised answer of each sample as a hashable key (the caller normalises, e.g. with the
scorer's canonical answer string; ``None`` = no answer could be extracted). All metrics are
fractions in [0, 1] averaged over problems (every problem weighs the same).

Definitions:

* ``pass@k`` (Chen et al. 2021, unbiased): per problem ``1 - C(n-c, k) / C(n, k)`` with ``c`` correct
  out of ``n >= k`` samples, i.e. the probability that a random k-subset contains a correct sample.
  Computed with exact integer arithmetic.
* ``pass@1`` = ``pass@k`` at ``k = 1`` = mean of ``c / n``.
* ``avg@k``: accuracy averaged over the FIRST ``k`` samples of each problem (AIME avg@16 style).
* ``maj@k``: majority vote over the answer keys of the first ``k`` samples; ``None`` keys do not
  vote. Ties go to the tied key that appears FIRST in sampling order (deterministic, independent of
  hashing). The vote is correct if the first sample carrying the winning key is correct; a problem
  where no sample produced an answer counts as wrong.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct out of ``n`` samples: ``1 - C(n-c,k)/C(n,k)``."""
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k takes integers, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples per problem, got n={n}; sample more (--n) or lower k")
    if n - c < k:
        return 1.0
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def _check_outcomes(outcomes: Sequence[Sequence[bool]], k: int, metric: str) -> None:
    if not outcomes:
        raise ValueError(f"{metric}: no problems to evaluate")
    for i, samples in enumerate(outcomes):
        if len(samples) < k:
            raise ValueError(f"{metric}: problem {i} has {len(samples)} samples, needs at least {k}")


def mean_pass_at_k(outcomes: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; ``outcomes[i]`` = correctness of problem i's samples."""
    _check_outcomes(outcomes, k, f"pass@{k}")
    return sum(pass_at_k(len(s), sum(bool(x) for x in s), k) for s in outcomes) / len(outcomes)


def pass_at_1(outcomes: Sequence[Sequence[bool]]) -> float:
    """Mean over problems of the fraction of correct samples (all samples used)."""
    return mean_pass_at_k(outcomes, 1)


def avg_at_k(outcomes: Sequence[Sequence[bool]], k: int) -> float:
    """Accuracy over the first ``k`` samples of each problem, averaged over problems."""
    _check_outcomes(outcomes, k, f"avg@{k}")
    if k < 1:
        raise ValueError(f"avg@k needs k >= 1, got {k}")
    return sum(sum(bool(x) for x in s[:k]) / k for s in outcomes) / len(outcomes)


def majority_vote(answer_keys: Sequence[Optional[Hashable]], correct: Sequence[bool],
                  k: Optional[int] = None) -> tuple[Optional[Hashable], bool]:
    """The winning key among the first ``k`` samples and whether it is correct (see module doc)."""
    if len(answer_keys) != len(correct):
        raise ValueError(f"{len(answer_keys)} answer keys for {len(correct)} correctness flags")
    k = len(answer_keys) if k is None else k
    if not 1 <= k <= len(answer_keys):
        raise ValueError(f"maj@{k} needs 1 <= k <= {len(answer_keys)} samples")
    counts: Counter = Counter()
    first_index: Dict[Hashable, int] = {}
    for i, key in enumerate(answer_keys[:k]):
        if key is None:
            continue
        counts[key] += 1
        first_index.setdefault(key, i)
    if not counts:
        return None, False
    winner = min(counts, key=lambda key: (-counts[key], first_index[key]))
    return winner, bool(correct[first_index[winner]])


def maj_at_k(outcomes: Sequence[Sequence[bool]], answer_keys: Sequence[Sequence[Optional[Hashable]]], k: int) -> float:
    """Fraction of problems whose majority answer over the first ``k`` samples is correct."""
    _check_outcomes(outcomes, k, f"maj@{k}")
    if len(answer_keys) != len(outcomes):
        raise ValueError(f"maj@{k}: {len(answer_keys)} answer-key lists for {len(outcomes)} problems")
    return sum(majority_vote(keys, corr, k)[1] for keys, corr in zip(answer_keys, outcomes)) / len(outcomes)


@dataclass
class ProblemResult:
    """One problem's sampled outcomes and the fields it can be grouped by."""

    correct: List[bool]  # correctness of each sample, in sampling order
    answer_keys: Optional[List[Optional[Hashable]]] = None  # normalised answer per sample (for maj@k)
    groups: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"subject": "Algebra", "level": 3}


def default_ks(n: int) -> List[int]:
    """Powers of two up to ``n``, and ``n`` itself: 1, 2, 4, ..., n."""
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks + ([n] if n not in ks else [])


def summarize(results: Sequence[ProblemResult], ks: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """pass@1, avg@n, pass@k and maj@k (for every k in ``ks`` up to the smallest n) over ``results``.

    ``ks`` defaults to ``default_ks(min n)``. maj@k is reported when every problem has answer keys.
    """
    if not results:
        raise ValueError("summarize: no problems to evaluate")
    outcomes = [r.correct for r in results]
    n_min = min(len(o) for o in outcomes)
    if n_min < 1:
        raise ValueError("summarize: a problem has no samples")
    ks = sorted(set(default_ks(n_min) if ks is None else ks))
    too_big = [k for k in ks if k > n_min]
    if too_big:
        raise ValueError(f"summarize: k={too_big} exceed the smallest number of samples per problem ({n_min})")
    out: Dict[str, float] = {"num_problems": float(len(results)), "num_samples": float(sum(map(len, outcomes))),
                             "pass@1": pass_at_1(outcomes), f"avg@{n_min}": avg_at_k(outcomes, n_min)}
    for k in ks:
        out[f"pass@{k}"] = mean_pass_at_k(outcomes, k)
    if all(r.answer_keys is not None for r in results):
        keys = [r.answer_keys for r in results]
        for k in ks:
            out[f"maj@{k}"] = maj_at_k(outcomes, keys, k)
    return out


MISSING_GROUP = "(missing)"


def _group_sort_key(value):
    # numbers before strings, each in natural order, so "level 2" comes before "level 10"
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def group_results(results: Sequence[ProblemResult], group_field: str) -> Dict[Any, List[ProblemResult]]:
    """Problems split by ``groups[group_field]`` (``MISSING_GROUP`` when absent), groups in sorted order."""
    buckets: Dict[Any, List[ProblemResult]] = {}
    for r in results:
        buckets.setdefault(r.groups.get(group_field, MISSING_GROUP), []).append(r)
    return {g: buckets[g] for g in sorted(buckets, key=_group_sort_key)}


def breakdown(results: Sequence[ProblemResult], group_field: str,
              ks: Optional[Sequence[int]] = None) -> Dict[Any, Dict[str, float]]:
    """``summarize`` per value of ``group_field`` (e.g. MATH-500 ``subject`` or ``level``)."""
    if ks is None:
        ks = default_ks(min(len(r.correct) for r in results))
    return {g: summarize(rs, ks) for g, rs in group_results(results, group_field).items()}


def available_group_fields(results: Sequence[ProblemResult]) -> List[str]:
    """Group fields present on at least one problem, sorted (what a report can break down by)."""
    return sorted({name for r in results for name in r.groups})
