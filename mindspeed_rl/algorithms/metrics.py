"""Metrics that aggregate exactly across micro-batches, mini-batches and DP ranks.

A micro-batch reports each metric as ``WeightedMetric(value, weight)``: its local mean and the
weight of that mean (valid tokens for token means, valid sequences for sequence means). The value
over any set of micro-batches is ``sum(value * weight) / sum(weight)``, which for the loss metrics
equals the loss aggregated over the union of those micro-batches in the configured mode.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence

import torch


class WeightedMetric(NamedTuple):
    value: torch.Tensor  # local mean (0 when weight is 0), detached, float64 scalar
    weight: torch.Tensor  # weight of this mean, float64 scalar

    @classmethod
    def from_parts(cls, numerator: torch.Tensor, denominator: torch.Tensor) -> "WeightedMetric":
        num = numerator.detach().to(torch.float64)
        den = denominator.detach().to(torch.float64)
        return cls(torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num)), den)


def metric_sums(records: Iterable[Mapping[str, WeightedMetric]]) -> Dict[str, tuple[float, float]]:
    """``name -> (sum(value * weight), sum(weight))`` over ``records`` (e.g. all micro-batches of a rank)."""
    sums: Dict[str, List[float]] = {}
    for record in records:
        for name, metric in record.items():
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0] += float(metric.value) * float(metric.weight)
            acc[1] += float(metric.weight)
    return {name: (acc[0], acc[1]) for name, acc in sums.items()}


def finalize_metric_sums(sums: Mapping[str, tuple[float, float]]) -> Dict[str, float]:
    """Turn ``metric_sums`` (possibly all-reduced across DP ranks) into final values."""
    return {name: (num / den if den > 0 else 0.0) for name, (num, den) in sums.items()}


def reduce_metrics(records: Iterable[Mapping[str, WeightedMetric]]) -> Dict[str, float]:
    """Final value of every metric over ``records`` (all micro-batches of all ranks, if gathered)."""
    return finalize_metric_sums(metric_sums(records))


def pack_metric_sums(sums: Mapping[str, tuple[float, float]], names: Sequence[str],
                     device: torch.device | None = None) -> torch.Tensor:
    """``[2, len(names)]`` float64 tensor of (weighted sums, weights) for one all-reduce SUM across ranks.

    Every rank must pass the same ``names``; a metric a rank did not see contributes (0, 0).
    """
    rows = [sums.get(name, (0.0, 0.0)) for name in names]
    return torch.tensor(rows, dtype=torch.float64, device=device).reshape(len(names), 2).T.contiguous()


def unpack_metric_sums(packed: torch.Tensor, names: Sequence[str]) -> Dict[str, tuple[float, float]]:
    return {name: (float(packed[0, i]), float(packed[1, i])) for i, name in enumerate(names)}
