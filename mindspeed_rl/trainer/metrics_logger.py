"""Where a run's numbers go: a console line per iteration, a JSONL file, TensorBoard, optionally
wandb; sample completions every N iterations; reward and length curves as PNG at the end."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mindspeed_rl.utils.fs import atomic_write_lines
from mindspeed_rl.trainer.metric_names import ThroughputBasis, mindspeed_rl_names

CONSOLE_KEYS = (
    ("reward/mean", "reward"),
    ("reward/acc/mean", "acc"),
    ("response_length/mean", "len"),
    ("pg_loss", "pg"),
    ("kl_loss", "kl"),
    ("grad_norm", "gnorm"),
    ("rollout/logprob_diff_max", "lpdiff"),
    ("timing/all", "s/it"),
)


class MetricsLogger:
    def __init__(self, log_dir: str | Path, resume: bool = False, use_tensorboard: bool = True, wandb_project: str = "",
                 log_interval: int = 1, throughput: ThroughputBasis | None = None):
        self.log_interval = max(int(log_interval), 1)
        self.throughput = throughput
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.log_dir / "metrics.jsonl"
        self.samples_dir = self.log_dir / "samples"
        if not resume and self.jsonl_path.exists():
            self.jsonl_path.unlink()
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        self._tb = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.log_dir / "tensorboard"))
            except ImportError:
                self._tb = None
        self._wandb = None
        if wandb_project:
            import wandb

            self._wandb = wandb.init(project=wandb_project, dir=str(self.log_dir), resume="allow")

    @classmethod
    def from_config(cls, cfg, resume: bool = False) -> "MetricsLogger":
        """The run's logger: ``megatron_training.log_dir``, ``log_interval``, ``wandb_project``."""
        mt = cfg.megatron_training
        return cls(mt.log_dir, resume=resume, wandb_project=mt.wandb_project, log_interval=mt.log_interval,
                   throughput=ThroughputBasis.from_config(cfg))

    def truncate_after(self, iteration: int) -> None:
        """On resume: drop lines of iterations after the checkpoint (they will be recomputed)."""
        self._jsonl.close()
        keep = [r for r in read_jsonl(self.jsonl_path) if r.get("iteration", 0) <= iteration]
        atomic_write_lines(self.jsonl_path, keep)
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")

    def log(self, iteration: int, total: int, metrics: dict[str, float]) -> None:
        """Every iteration to JSONL / TensorBoard / wandb (also under MindSpeed-RL's names); the console
        line every ``log_interval`` iterations, and always for the first, the last and a validated one."""
        metrics = {**metrics, **mindspeed_rl_names(metrics, self.throughput)}
        row = {"iteration": iteration, **{k: _plain(v) for k, v in metrics.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for key, value in row.items():
                if key != "iteration" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, iteration)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(row, step=iteration)
        validated = any(k.startswith("val/") for k in metrics)  # a validation result is always shown
        if iteration % self.log_interval and iteration not in (1, total) and not validated:
            return
        parts = [f"iter {iteration}/{total}"]
        for key, short in CONSOLE_KEYS:
            if key in metrics:
                parts.append(f"{short} {metrics[key]:.4g}")
        for key in sorted(k for k in metrics if k.startswith("val/") and k.endswith("/pass@1")):
            parts.append(f"{key} {metrics[key]:.4g}")
        print(" | ".join(parts), flush=True)

    def save_samples(self, iteration: int, samples: list[dict[str, Any]]) -> Path:
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        path = self.samples_dir / f"iter_{iteration:07d}.jsonl"
        atomic_write_lines(path, samples, ensure_ascii=False)
        return path

    def plot_curves(self) -> Path | None:
        """reward and response-length curves as PNG (matplotlib, no display)."""
        rows = read_jsonl(self.jsonl_path)
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = [
            ("reward", sorted({k for r in rows for k in r if k.startswith("reward/") and k.endswith("/mean")})),
            ("response length (tokens)", ["response_length/mean", "response_length/max"]),
        ]
        val_keys = sorted({k for r in rows for k in r if k.startswith("val/") and k.endswith("/pass@1")})
        if val_keys:
            panels.append(("validation pass@1", val_keys))
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
        for ax, (title, keys) in zip(axes, panels):
            for key in keys:
                pts = [(r["iteration"], r[key]) for r in rows if key in r]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 20 else None, label=key)
            ax.set_title(title)
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = self.log_dir / "curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _plain(v):
    try:
        return float(v) if not isinstance(v, (str, bool, int)) else v
    except (TypeError, ValueError):
        return str(v)
