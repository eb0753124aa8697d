"""A results table over several benchmarks and checkpoints (``cli/evaluate.py --config-name r1zero_table``).

A table config (``configs/eval/r1zero_table.yaml``) lists benchmarks, each a per-benchmark eval
config plus overrides (the recipe's samples, temperature, max tokens) and the metric the table
shows, and the published rows to print beside the measured ones. Every (model, benchmark) cell is
an ordinary evaluation (``runner.evaluate``) with exactly the settings ``cli/evaluate.py
--config-name <config> <overrides>`` would use, written to its own output directory, so each
cell resumes like a per-benchmark run and matches it number for number.

Overrides given on the command line apply to every benchmark (``max_tokens=64``) or to one
(``aime24.n=2``). A benchmark whose data file is absent is skipped with one line.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.evaluation.report import save_png
from mindspeed_rl.utils.fs import atomic_open


@dataclass
class TableBenchmark:
    id: str  # prefix of per-benchmark overrides (aime24.n=2) and output sub-directory
    config: str  # the per-benchmark eval config (configs/eval/<config>.yaml)
    label: str  # column title (MATH-500)
    metric: str  # pass@1 | avg@n (n: the benchmark's samples per problem) | any metric name in report.json
    overrides: List[str] = field(default_factory=list)
    published_metric: str = ""  # the metric of the published numbers (avg@24); default: ``metric``


@dataclass
class PublishedRow:
    label: str
    values: Dict[str, float]  # benchmark id -> score in percent


@dataclass
class TableSpec:
    name: str
    title: str
    benchmarks: List[TableBenchmark]
    published: List[PublishedRow]


@dataclass
class Cell:
    value: Optional[float]  # percent; None when skipped
    metric: str
    output_dir: Optional[str] = None
    note: str = ""


@dataclass
class ModelRow:
    label: str
    path: str
    iteration: int
    cells: Dict[str, Cell]


def is_table_config(data: Dict[str, Any]) -> bool:
    return isinstance(data, dict) and "table" in data


def _flatten(prefix: str, value: Any) -> List[str]:
    if isinstance(value, dict):
        return [o for k, v in value.items() for o in _flatten(f"{prefix}.{k}" if prefix else str(k), v)]
    if isinstance(value, list):
        return [f"{prefix}=[{','.join(str(v) for v in value)}]"]
    return [f"{prefix}={'null' if value is None else value}"]


def parse_table_spec(data: Dict[str, Any], source: str) -> TableSpec:
    """Read and check a table config (errors name the key)."""
    problems = []
    t = data.get("table") or {}
    benches = []
    for i, b in enumerate(t.get("benchmarks") or []):
        missing = [k for k in ("id", "config", "label", "metric") if not b.get(k)]
        if missing:
            problems.append(Problem(f"table.benchmarks[{i}]", b, f"lacks {missing}", "give id, config, label and metric"))
            continue
        benches.append(TableBenchmark(str(b["id"]), str(b["config"]), str(b["label"]), str(b["metric"]),
                                      _flatten("", b.get("overrides") or {}),
                                      str(b.get("published_metric") or b["metric"])))
    if not benches:
        problems.append(Problem("table.benchmarks", t.get("benchmarks"), "is empty", "list at least one benchmark"))
    ids = [b.id for b in benches]
    if len(set(ids)) != len(ids):
        problems.append(Problem("table.benchmarks", ids, "ids repeat", "give every benchmark its own id"))
    published = []
    for i, row in enumerate(t.get("published") or []):
        unknown = sorted(set(row.get("values") or {}) - set(ids))
        if not row.get("label") or unknown:
            problems.append(Problem(f"table.published[{i}]", row, f"no label or unknown benchmarks {unknown}",
                                    f"use a label and values keyed by {ids}"))
            continue
        published.append(PublishedRow(str(row["label"]), {k: float(v) for k, v in row["values"].items()}))
    if problems:
        raise ConfigError(problems, source)
    return TableSpec(str(t.get("name") or "table"), str(t.get("title") or t.get("name") or "table"), benches, published)


def split_overrides(overrides: Sequence[str], ids: Sequence[str]) -> tuple[List[str], Dict[str, List[str]]]:
    """Command-line overrides -> (for every benchmark, {benchmark id: its own})."""
    common: List[str] = []
    own: Dict[str, List[str]] = {i: [] for i in ids}
    for o in overrides:
        head = o.lstrip("+~").split("=", 1)[0].split(".", 1)
        if len(head) == 2 and head[0] in own:
            prefix = o[: len(o) - len(o.lstrip("+~"))]
            own[head[0]].append(prefix + o.lstrip("+~")[len(head[0]) + 1:])
        else:
            common.append(o)
    return common, own


def safe_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("_") or "model"


def model_identity(path: str) -> tuple[str, int]:
    """(label, iteration): a run checkpoint is labelled by its iteration; other weights count as iteration 0."""
    from mindspeed_rl.models.sources import is_run_checkpoint, open_megatron_checkpoint

    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path) and is_run_checkpoint(path):
        src = open_megatron_checkpoint(path, log=lambda *a: None)
        return f"{os.path.basename(src.root)}@iter{src.iteration}", src.iteration
    return os.path.basename(os.path.normpath(path)), 0


def metric_name(metric: str, n: int) -> str:
    return metric.replace("@n", f"@{n}") if metric.endswith("@n") else metric


def format_table(spec: TableSpec, rows: Sequence[ModelRow]) -> str:
    from .report import format_table as fmt

    header = ["model", "iteration"] + [
        f"{b.label} {_column_metric(b, rows)}" for b in spec.benchmarks]
    body = [[r.label, str(r.iteration)] + [_pct(r.cells.get(b.id)) for b in spec.benchmarks] for r in rows]
    body += [[f"{p.label} (published)", "-"] + [f"{p.values[b.id]:.1f}" if b.id in p.values else "-"
                                                for b in spec.benchmarks] for p in spec.published]
    return fmt(body, header)


def _column_metric(bench: TableBenchmark, rows: Sequence[ModelRow]) -> str:
    names = sorted({r.cells[bench.id].metric for r in rows if bench.id in r.cells})
    return "/".join(names) if names else bench.metric


def _pct(cell: Optional[Cell]) -> str:
    return "skipped" if cell is None or cell.value is None else f"{cell.value:.1f}"


def write_csv(spec: TableSpec, rows: Sequence[ModelRow], path: str) -> None:
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "path", "iteration", "source"]
                   + [c for b in spec.benchmarks for c in (f"{b.id}", f"{b.id}_metric")])
        for r in rows:
            cells = [r.cells.get(b.id) for b in spec.benchmarks]
            w.writerow([r.label, r.path, r.iteration, "measured"]
                       + [x for c in cells for x in (("" if c is None or c.value is None else f"{c.value:.4f}"),
                                                     ("" if c is None else c.metric))])
        for p in spec.published:
            w.writerow([p.label, "", "", "published"]
                       + [x for b in spec.benchmarks for x in (p.values.get(b.id, ""), b.published_metric)])


def write_chart(spec: TableSpec, rows: Sequence[ModelRow], path: str) -> None:
    """Several checkpoints: score against iteration per benchmark; one: bars beside the published rows.
    Published scores are drawn as dotted lines / bars of their own (they are for the recipe's model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(rows) > 1:
        ordered = sorted(rows, key=lambda r: r.iteration)
        for i, b in enumerate(spec.benchmarks):
            pts = [(r.iteration, r.cells[b.id].value) for r in ordered if r.cells.get(b.id) and r.cells[b.id].value is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[i % len(colors)],
                        label=f"{b.label} {_column_metric(b, rows)}")
            for j, p in enumerate(spec.published):
                if b.id in p.values:
                    ax.axhline(p.values[b.id], color=colors[i % len(colors)], linestyle=[":", "--"][j % 2], linewidth=1)
        ax.set_xlabel("iteration")
        if spec.published:
            ax.text(0.01, 0.99, "dotted/dashed: " + " / ".join(f"{p.label} (published)" for p in spec.published),
                    transform=ax.transAxes, va="top", fontsize=7)
    else:
        groups = [(r.label, {b.id: r.cells[b.id].value for b in spec.benchmarks if r.cells.get(b.id)}) for r in rows]
        groups += [(f"{p.label}\n(published)", p.values) for p in spec.published]
        width = 0.8 / max(1, len(groups))
        for g, (label, values) in enumerate(groups):
            xs = [i + g * width for i, b in enumerate(spec.benchmarks) if values.get(b.id) is not None]
            ys = [values[b.id] for b in spec.benchmarks if values.get(b.id) is not None]
            ax.bar(xs, ys, width, label=label)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(spec.benchmarks))])
        ax.set_xticklabels([f"{b.label}\n{_column_metric(b, rows)}" for b in spec.benchmarks])
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.set_title(spec.title)
    ax.legend(fontsize=8, loc="upper right")
    save_png(fig, path)


def run_table(spec: TableSpec, models: Sequence[str], overrides: Sequence[str], output_dir: str,
              load_config: Callable[[str, List[str]], Any], evaluate_model: Callable[[str, List[Any]], List[Any]],
              chart: bool = True, log: Callable[[str], None] = print) -> List[ModelRow]:
    """Evaluate every model on every benchmark whose data is present; print and write the table.

    ``load_config(config_name, overrides)`` builds a checked EvalConfig (the CLI's loader);
    ``evaluate_model(model_path, [EvalConfig, ...])`` runs them on one loaded model and returns
    their reports in order (the CLI loads / converts each model once).
    """
    from .datasets import DataMissingError, check_data_present

    common, own = split_overrides(overrides, [b.id for b in spec.benchmarks])
    os.makedirs(output_dir, exist_ok=True)
    rows: List[ModelRow] = []
    labels_seen: Dict[str, int] = {}
    for path in models:
        label, iteration = model_identity(path)
        labels_seen[label] = labels_seen.get(label, 0) + 1
        if labels_seen[label] > 1:
            label = f"{label}#{labels_seen[label]}"
        cells: Dict[str, Cell] = {}
        todo = []
        for b in spec.benchmarks:
            out = os.path.join(output_dir, safe_label(label), b.id)
            cfg = load_config(b.config, [*b.overrides, *common, *own[b.id], f"model={path}", f"output_dir={out}"])
            try:
                check_data_present(cfg.dataset)
            except DataMissingError as exc:
                log(f"skipping {b.label} for {label}: {exc}")
                cells[b.id] = Cell(None, metric_name(b.metric, cfg.n), None, "data missing")
                continue
            log(f"{label} / {b.label}: the same as cli/evaluate.py --config-name {b.config} --model {path} "
                + " ".join([*b.overrides, *common, *own[b.id], f"output_dir={out}"]))
            todo.append((b, cfg))
        if todo:
            log(f"== {label}: {', '.join(b.label for b, _ in todo)}")
            reports = evaluate_model(path, [cfg for _, cfg in todo])
            for (b, cfg), report in zip(todo, reports):
                name = metric_name(b.metric, cfg.n)
                if name not in report.metrics:
                    raise ConfigError([Problem(f"table.benchmarks[{b.id}].metric", b.metric,
                                               f"{name} is not among the metrics {sorted(report.metrics)}",
                                               "use pass@1, avg@n or one of those")])
                cells[b.id] = Cell(100.0 * report.metrics[name], name, report.output_dir)
        rows.append(ModelRow(label, os.path.abspath(path), iteration, cells))
    table = format_table(spec, rows)
    log(f"\n{spec.title}\n{table}")
    csv_path = os.path.join(output_dir, "table.csv")
    write_csv(spec, rows, csv_path)
    written = [csv_path]
    if chart:
        try:
            write_chart(spec, rows, os.path.join(output_dir, "table.png"))
            written.append(os.path.join(output_dir, "table.png"))
        except ImportError as exc:
            log(f"warning: table.png not written, matplotlib is missing ({exc})")
    log("wrote " + " and ".join(written))
    return rows
