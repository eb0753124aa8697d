"""Generate, score and aggregate: the evaluation loop shared by ``cli/evaluate.py`` and the trainer.

Problems are cut into batches of ``batch_size`` at fixed positions of the selected problem list.
Each batch is one ``engine.generate`` call with ``n`` samples per problem and the seed
``batch_seed(seed, index of the batch's first problem)``, so a batch's samples depend only on the
settings and on which problems it holds. ``evaluate`` appends each finished batch to
``samples.jsonl``; a rerun with the same settings skips finished batches and regenerates only the
rest (an unfinished batch is regenerated whole), which gives exactly the samples an uninterrupted
run would have produced.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from mindspeed_rl.data import load_template, stop_token_ids
from mindspeed_rl.utils.progress import progress_bar

from .config import EvalConfig, check_eval_config
from .datasets import EvalProblem, LoadedDataset, load_problems
from .judging import Judge
from .metrics import ProblemResult, available_group_fields, breakdown, summarize
from .records import SampleStore

SCHEMA_VERSION = 1  # of samples.jsonl / report.json


def batch_seed(seed: int, first_problem_index: int) -> int:
    """The sampling seed of the batch starting at a given problem (stable, well mixed, < 2**31)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(first_problem_index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31 - 1)


def render_prompts(problems: Sequence[EvalProblem], template) -> List[str]:
    return [template.render(p.problem) for p in problems]


def sampling_params(cfg: EvalConfig, seed: int, stop_ids: Sequence[int]):
    from mindspeed_rl.engine.rollout import SamplingParams

    s = cfg.sampling
    return SamplingParams(n=cfg.n, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p,
                          max_tokens=s.max_tokens, stop_token_ids=tuple(stop_ids), seed=seed, logprobs=False)


def batches(problems: Sequence[EvalProblem], batch_size: int) -> List[List[EvalProblem]]:
    return [list(problems[i:i + batch_size]) for i in range(0, len(problems), batch_size)]


def generate_and_judge(engine, tokenizer, problems: Sequence[EvalProblem], prompts: Sequence[str],
                       cfg: EvalConfig, judge: Judge, stop_ids: Sequence[int]) -> List[Dict[str, Any]]:
    """One batch: generate ``n`` samples per problem, decode, score; returns one record per sample."""
    prompt_ids = [tokenizer.encode(text, add_special_tokens=False) for text in prompts]
    seed = batch_seed(cfg.sampling.seed, problems[0].index)
    outputs = engine.generate(prompt_ids, sampling_params(cfg, seed, stop_ids))
    if len(outputs) != len(problems):
        raise RuntimeError(f"rollout engine returned {len(outputs)} groups for {len(problems)} prompts")
    records: List[Dict[str, Any]] = []
    for problem, prompt, group in zip(problems, prompts, outputs):
        if len(group) != cfg.n:
            raise RuntimeError(f"rollout engine returned {len(group)} samples for problem {problem.index}, "
                               f"expected n={cfg.n}")
        for j, out in enumerate(sorted(group, key=lambda o: o.sample_index)):
            records.append({
                "problem_index": problem.index, "id": problem.id, "sample_index": j, "seed": seed,
                "prompt": prompt, "response": tokenizer.decode(out.token_ids, skip_special_tokens=True),
                "response_tokens": len(out.token_ids), "finish_reason": out.finish_reason,
                "gold": problem.answer, **problem.groups,
            })
    judgements = judge.judge([r["response"] for r in records], [r["gold"] for r in records])
    for rec, jd in zip(records, judgements):
        rec.update(extracted=jd.extracted, answer_key=jd.key, correct=jd.correct, rewards=jd.rewards)
    return records


def problem_results(problems: Sequence[EvalProblem], records: Sequence[Dict[str, Any]]) -> List[ProblemResult]:
    by_problem: Dict[int, List[Dict[str, Any]]] = {}
    for rec in records:
        by_problem.setdefault(int(rec["problem_index"]), []).append(rec)
    out = []
    for p in problems:
        recs = sorted(by_problem[p.index], key=lambda r: r["sample_index"])
        out.append(ProblemResult(correct=[bool(r["correct"]) for r in recs],
                                 answer_keys=[r["answer_key"] for r in recs], groups=dict(p.groups)))
    return out


def aggregate(problems: Sequence[EvalProblem], records: Sequence[Dict[str, Any]], cfg: EvalConfig) -> Dict[str, Any]:
    """Overall metrics, per-group breakdowns and generation statistics."""
    results = problem_results(problems, records)
    ks = sorted(set(cfg.ks)) or None
    fields = list(cfg.breakdown_fields) or available_group_fields(results)
    lengths = [int(r["response_tokens"]) for r in records]
    stats = {
        "response_tokens_mean": sum(lengths) / len(lengths),
        "response_tokens_max": max(lengths),
        "truncated_fraction": sum(r["finish_reason"] == "length" for r in records) / len(records),
        "no_answer_fraction": sum(r["answer_key"] is None for r in records) / len(records),
    }
    return {"metrics": summarize(results, ks),
            "breakdowns": {f: {str(g): m for g, m in breakdown(results, f, ks).items()} for f in fields},
            "generation": stats}


def template_spec(template) -> Dict[str, Any]:
    return template.to_dict()


def _versions() -> Dict[str, str]:
    import importlib.metadata as md

    import mindspeed_rl

    out = {"mindspeed_rl": mindspeed_rl.__version__}
    for dist in ("math-verify", "transformers", "torch", "vllm"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def generation_fingerprint(cfg: EvalConfig, dataset: LoadedDataset, template, model: Dict[str, Any]) -> Dict[str, Any]:
    """Everything that decides which samples are generated and how they are judged (resume key)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {k: model.get(k) for k in ("path", "iteration", "weights") if model.get(k) is not None},
        "template": template_spec(template),
        "n": cfg.n,
        "batch_size": cfg.batch_size,
        "sampling": dataclasses.asdict(cfg.sampling),
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint, "problems": len(dataset.problems)},
        "scorer": {"functions": list(cfg.scorer.functions), "correct_function": cfg.scorer.correct_function,
                   "correct_threshold": cfg.scorer.correct_threshold},
    }


@dataclass
class EvalReport:
    """What ``evaluate`` returns and writes to ``report.json``."""

    settings: Dict[str, Any]
    metrics: Dict[str, float]
    breakdowns: Dict[str, Dict[str, Dict[str, float]]]
    generation: Dict[str, Any]
    output_dir: Optional[str] = None
    resumed_problems: int = 0  # problems taken from an earlier run's samples.jsonl
    generated_problems: int = 0
    timing: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def default_output_dir(cfg: EvalConfig) -> str:
    model = os.path.basename(os.path.normpath(cfg.model)) if cfg.model else "model"
    return os.path.join("outputs", "eval", model, f"{cfg.dataset.name}_n{cfg.n}_seed{cfg.sampling.seed}")


def evaluate(engine, tokenizer, cfg: EvalConfig, dataset: Optional[LoadedDataset] = None, *,
             model_info: Optional[Dict[str, Any]] = None, judge: Optional[Judge] = None,
             log: Callable[[str], None] = print,
             on_batch: Optional[Callable[[int, List[Dict[str, Any]]], None]] = None) -> EvalReport:
    """Evaluate ``engine`` on ``cfg.dataset``, resumably; writes samples.jsonl and report.json.

    ``model_info`` (path, source, ...) is recorded in the settings. ``on_batch(batch_number,
    records)`` is called after each batch is durable (progress hooks, tests).
    """
    from .report import write_report

    check_eval_config(cfg)
    t0 = time.perf_counter()
    dataset = dataset or load_problems(cfg.dataset)
    template = load_template(cfg.template)
    model_info = dict(model_info or {"path": cfg.model})
    out_dir = cfg.output_dir or default_output_dir(cfg)
    fingerprint = generation_fingerprint(cfg, dataset, template, model_info)
    store = SampleStore(out_dir, fingerprint, resume=cfg.resume, overwrite=cfg.overwrite)

    plan = batches(dataset.problems, cfg.batch_size)
    have = store.by_problem()
    done = [all(len(have.get(p.index, ())) == cfg.n for p in b) for b in plan]
    done_indices = {p.index for b, ok in zip(plan, done) if ok for p in b}
    dropped = store.keep_only(done_indices)
    resumed = len(done_indices)
    if resumed or dropped:
        log(f"resuming {store.path}: {resumed} problems done, {len(dataset.problems) - resumed} to go"
            + (f" ({dropped} samples of an unfinished batch discarded)" if dropped else ""))

    own_judge = judge is None
    judge = judge or Judge(cfg.scorer, template.stop_words)
    stop_ids = stop_token_ids(template, tokenizer)
    t_gen = time.perf_counter()
    generated = 0
    try:
        todo = [(i, b) for i, (b, ok) in enumerate(zip(plan, done)) if not ok]
        with progress_bar(len(dataset.problems), f"eval {dataset.name}", unit="problem", initial=resumed) as bar:
            for number, batch in todo:
                records = generate_and_judge(engine, tokenizer, batch, render_prompts(batch, template), cfg,
                                             judge, stop_ids)
                store.append(records)
                generated += len(batch)
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(number, records)
    finally:
        if own_judge:
            judge.close()
    t_end = time.perf_counter()

    agg = aggregate(dataset.problems, store.records, cfg)
    settings = {
        **fingerprint,
        "model": model_info,
        "dataset": {"name": dataset.name, "files": dataset.files, "keys": dataset.keys,
                    "start": cfg.dataset.start, "problems": len(dataset.problems),
                    "fingerprint": dataset.fingerprint},
        "stop_token_ids": stop_ids,
        "seeding": "per batch: blake2b(f'{seed}:{first problem index}') % (2**31-1)",
        "scorer": {**fingerprint["scorer"], "num_workers": cfg.scorer.num_workers, "timeout_s": cfg.scorer.timeout_s},
        "ks": list(cfg.ks),
        "engine": dataclasses.asdict(cfg.engine),
        "versions": _versions(),
    }
    report = EvalReport(settings=settings, metrics=agg["metrics"], breakdowns=agg["breakdowns"],
                        generation={**agg["generation"], "scorer_stats_this_run": dict(judge.stats)},
                        output_dir=os.path.abspath(out_dir), resumed_problems=resumed, generated_problems=generated,
                        timing={"total_s": t_end - t0, "generate_and_score_s": t_end - t_gen,
                                "problems_per_s": generated / (t_end - t_gen) if generated and t_end > t_gen else 0.0})
    write_report(report, out_dir, chart=cfg.chart, log=log)
    return report


def metrics_fingerprint(report: EvalReport) -> str:
    """A short hash of the numbers (not timings): equal for runs that produced the same results."""
    payload = {"metrics": report.metrics, "breakdowns": report.breakdowns}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
