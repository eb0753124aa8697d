"""Peak host memory of response log-probs + entropy (forward and backward) from bf16 logits:
the full-float32 path (the logits upcast whole, as Float16Module's fp32 output and a plain
log-softmax did) vs the engine's chunked kernel (``engine.vocab_parallel``: bf16 in, float32
accumulation chunk by chunk, softmax recomputed in backward).

Each side runs in a fresh process; the figure is its peak RSS above the RSS it had once the bf16
logits (and nothing else) were allocated, so both count the same inputs and their bf16 gradient.
Both run with a fixed glibc mmap threshold (``MALLOC_MMAP_THRESHOLD_``): each large tensor goes
back to the OS when freed, so RSS follows the live tensors rather than the allocator's cache.

    python3 benchmarks/logprob_memory.py                       # 1024 positions x 152064 (Qwen2.5 vocab)
    python3 benchmarks/logprob_memory.py --rows 512 --vocab 65536
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _side(name: str, rows: int, vocab: int) -> dict:
    import torch

    from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_probs

    torch.set_num_threads(1)

    def run(logits, labels, w):
        if name == "full_fp32":
            z = logits.float()  # the whole [rows, vocab] in float32
            logp = torch.log_softmax(z, -1)
            lp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
            ent = -(logp.exp() * logp).sum(-1)
        else:
            lp, ent = vocab_parallel_log_probs(logits, labels, with_entropy=True)
        (lp * w + ent * 0.01).sum().backward()
        return lp

    g = torch.Generator().manual_seed(0)
    small = torch.randn(4, 64, dtype=torch.bfloat16, generator=g).requires_grad_(True)
    run(small, torch.zeros(4, dtype=torch.long), torch.ones(4))  # lazy initialisation outside the figure
    # generated in bf16 directly: no float32 temporary raises the baseline peak
    logits = torch.randn(rows, vocab, dtype=torch.bfloat16, generator=g).mul_(2).requires_grad_(True)
    labels = torch.randint(0, vocab, (rows,), generator=g)
    w = torch.randn(rows, generator=g)
    base = _peak_mib()
    lp = run(logits, labels, w)
    return {"side": name, "peak_over_inputs_mib": round(_peak_mib() - base, 1),
            "logits_bf16_mib": round(logits.numel() * 2 / 2**20, 1), "checksum": float(lp.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1024, help="response positions (micro-batch rows x response length)")
    ap.add_argument("--vocab", type=int, default=152064)
    ap.add_argument("--side", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(_side(a.side, a.rows, a.vocab)))
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               MALLOC_MMAP_THRESHOLD_="65536")
    results = []
    for side in ("full_fp32", "chunked"):
        out = subprocess.run([sys.executable, __file__, "--rows", str(a.rows), "--vocab", str(a.vocab), "--side", side],
                             env=env, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    full, chunked = results
    print(f"log-probs + entropy, forward + backward, bf16 logits [{a.rows}, {a.vocab}] "
          f"({full['logits_bf16_mib']} MiB):")
    for r in results:
        print(f"  {r['side']:>9}: peak {r['peak_over_inputs_mib']:8.1f} MiB over the inputs")
    print(f"  ratio {full['peak_over_inputs_mib'] / max(chunked['peak_over_inputs_mib'], 1e-9):.1f}x; "
          f"sum of log-probs {full['checksum']:.4f} vs {chunked['checksum']:.4f}")


if __name__ == "__main__":
    main()
