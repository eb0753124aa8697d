"""Validation inside training: the evaluation loop on held-out sets, returning flat metrics.

The trainer builds one ``Validator`` before the first iteration (problems read, prompts rendered,
scorer pool started once) and calls it with its live rollout engine every ``test_freq``
iterations (and before the first when ``test_before_train``)::

    validator = Validator([math500_cfg, aime24_cfg], tokenizer)
    metrics = validator(rollout_engine, step=it)   # {"val/math500/pass@1": ..., ...}
    validator.close()

Nothing is written to disk unless ``samples_dir`` is given (then ``<samples_dir>/step_<it>/
<dataset>.jsonl`` holds every sample). Samples use the same per-batch seeds as ``evaluate``, so a
validation number at step 0 equals ``cli/evaluate.py`` on the same weights and settings.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from mindspeed_rl.data import load_template, stop_token_ids
from mindspeed_rl.utils.fs import atomic_write_lines
from mindspeed_rl.utils.progress import progress_bar

from .config import EvalConfig, check_eval_config
from .datasets import load_problems
from .judging import Judge
from .runner import aggregate, batches, generate_and_judge, render_prompts


class Validator:
    """Held-out evaluation for the trainer; see the module docstring."""

    def __init__(self, configs: Sequence[EvalConfig], tokenizer, samples_dir: Optional[str] = None, log=print):
        # log=None: no line per dataset (the trainer prints pass@1 on its iteration line instead)
        if not configs:
            raise ValueError("Validator needs at least one dataset config")
        names = [c.dataset.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"validation datasets must have distinct dataset.name values, got {names}")
        self.tokenizer = tokenizer
        self.samples_dir = samples_dir
        self.log = log
        self._sets = []
        for cfg in configs:
            check_eval_config(cfg, source=f"validation dataset {cfg.dataset.name!r}")
            template = load_template(cfg.template)
            dataset = load_problems(cfg.dataset)
            self._sets.append({
                "cfg": cfg, "dataset": dataset, "template": template,
                "prompts": render_prompts(dataset.problems, template),
                "stop_ids": stop_token_ids(template, tokenizer),
                "judge": Judge(cfg.scorer, template.stop_words),
            })

    def __call__(self, engine, step: int = 0) -> Dict[str, float]:
        """Generate on every held-out set with ``engine``; returns ``val/<dataset>/<metric>`` floats."""
        out: Dict[str, float] = {}
        for s in self._sets:
            cfg, dataset = s["cfg"], s["dataset"]
            prompts = dict(zip((p.index for p in dataset.problems), s["prompts"]))
            records: List[Dict[str, Any]] = []
            with progress_bar(len(dataset.problems), f"validation {dataset.name}", unit="problem") as bar:
                for batch in batches(dataset.problems, cfg.batch_size):
                    records += generate_and_judge(engine, self.tokenizer, batch, [prompts[p.index] for p in batch],
                                                  cfg, s["judge"], s["stop_ids"])
                    bar.update(len(batch))
            agg = aggregate(dataset.problems, records, cfg)
            flat = flatten_metrics(dataset.name, agg)
            out.update(flat)
            if self.samples_dir:
                self._write_samples(step, dataset.name, records)
            if self.log is not None:
                self.log(f"validation step {step} {dataset.name}: pass@1 {flat[f'val/{dataset.name}/pass@1']:.4f}")
        return out

    def _write_samples(self, step: int, name: str, records: List[Dict[str, Any]]) -> None:
        d = os.path.join(self.samples_dir, f"step_{step}")
        os.makedirs(d, exist_ok=True)
        atomic_write_lines(os.path.join(d, f"{name}.jsonl"), records, ensure_ascii=False)

    def close(self) -> None:
        for s in self._sets:
            s["judge"].close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def flatten_metrics(name: str, agg: Dict[str, Any]) -> Dict[str, float]:
    """``val/<name>/<metric>``, ``val/<name>/<field>/<group>/pass@1`` and generation statistics."""
    out = {f"val/{name}/{k}": float(v) for k, v in agg["metrics"].items() if "@" in k}
    for field, groups in agg["breakdowns"].items():
        for group, m in groups.items():
            out[f"val/{name}/{field}/{group}/pass@1"] = float(m["pass@1"])
    for k, v in agg["generation"].items():
        out[f"val/{name}/{k}"] = float(v)
    return out


def validation_configs(items: Sequence[Dict[str, Any]], source: str = "validation") -> List[EvalConfig]:
    """EvalConfigs from plain dicts (a run config's list of held-out sets), every key checked.

    Each item is an ``EvalConfig`` mapping, e.g. ``{"dataset": {"name": "math500", "path": ...,
    "max_problems": 100}, "n": 1, "sampling": {"temperature": 0.0, "max_tokens": 2048}}``.
    """
    from mindspeed_rl.config.structured import from_dict

    out = []
    for i, item in enumerate(items):
        where = f"{source}[{i}]"
        out.append(check_eval_config(from_dict(EvalConfig, dict(item), source=where), where))
    return out


def validate(engine, tokenizer, configs: Sequence[EvalConfig], step: int = 0) -> Dict[str, float]:
    """One-shot validation (builds and closes a ``Validator``); the trainer should keep one instead."""
    with Validator(configs, tokenizer) as v:
        return v(engine, step)
