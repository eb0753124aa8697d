"""Writing an evaluation report: report.json (numbers + exact settings), a console table, report.png."""
from __future__ import annotations

import os
import re
from typing import Callable, List, Mapping

from mindspeed_rl.utils.fs import atomic_path, atomic_write_json

REPORT_FILE = "report.json"
CHART_FILE = "report.png"


def _metric_order(name: str):
    m = re.match(r"([a-z_]+)@(\d+)$", name)
    order = {"pass": 0, "avg": 1, "maj": 2}
    return (order.get(m.group(1), 3), int(m.group(2))) if m else (9, 0)


def metric_columns(metrics: Mapping[str, float]) -> List[str]:
    return sorted((k for k in metrics if "@" in k), key=_metric_order)


def format_table(rows: List[List[str]], header: List[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def summary_text(report) -> str:
    """The console summary: overall metrics and one table per breakdown field (percentages)."""
    s = report.settings
    cols = metric_columns(report.metrics)
    head = (f"{s['dataset']['name']}: {int(report.metrics['num_problems'])} problems x n={s['n']} | "
            f"model {s['model'].get('path')} | template {s['template']['name']} | "
            f"T={s['sampling']['temperature']} top_p={s['sampling']['top_p']} "
            f"max_tokens={s['sampling']['max_tokens']} seed={s['sampling']['seed']}")
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    parts = [head, format_table([["overall", str(int(report.metrics["num_problems"]))]
                                 + [pct(report.metrics[c]) for c in cols]], ["", "problems"] + cols)]
    for field, groups in report.breakdowns.items():
        rows = [[str(g), str(int(m["num_problems"]))] + [pct(m[c]) if c in m else "-" for c in cols]
                for g, m in groups.items()]
        parts.append(format_table(rows, [field, "problems"] + cols))
    g = report.generation
    parts.append(f"responses: mean {g['response_tokens_mean']:.0f} tokens, {100 * g['truncated_fraction']:.1f}% hit "
                 f"max_tokens, {100 * g['no_answer_fraction']:.1f}% without an extractable answer")
    return "\n\n".join(parts)


def write_chart(report, path: str) -> None:
    """pass@k / maj@k against k, and pass@1 per group of every breakdown field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(report.breakdowns)
    fig, axes = plt.subplots(1, 1 + len(fields), figsize=(5 + 5 * len(fields), 4), squeeze=False)
    ax = axes[0][0]
    for kind in ("pass", "maj"):
        ks = sorted(int(k.split("@")[1]) for k in report.metrics if k.startswith(f"{kind}@"))
        if ks:
            ax.plot(ks, [100 * report.metrics[f"{kind}@{k}"] for k in ks], marker="o", label=f"{kind}@k")
    all_ks = sorted({int(k.split("@")[1]) for k in report.metrics if k.startswith(("pass@", "maj@"))})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_ks)
    ax.set_xticklabels([str(k) for k in all_ks])
    ax.set_xlabel("k")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(f"{report.settings['dataset']['name']} (n={report.settings['n']})")
    ax.legend()
    for ax, field in zip(axes[0][1:], fields):
        groups = report.breakdowns[field]
        names = list(groups)
        ax.bar(range(len(names)), [100 * groups[g]["pass@1"] for g in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_title(f"pass@1 by {field}")
    save_png(fig, path)


def save_png(fig, path: str) -> None:
    """Lay out, write atomically (a viewer never reads half a PNG) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_report(report, out_dir: str, chart: bool = True, log: Callable[[str], None] = print) -> None:
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, REPORT_FILE), report.to_dict(), ensure_ascii=False, default=str)
    log(summary_text(report))
    if chart:
        try:
            write_chart(report, os.path.join(out_dir, CHART_FILE))
        except ImportError as exc:  # the numbers are written; say clearly what is missing
            log(f"warning: {CHART_FILE} not written, matplotlib is missing ({exc}); pip install matplotlib")
    log(f"wrote {os.path.join(out_dir, REPORT_FILE)} and {os.path.join(out_dir, 'samples.jsonl')}")
