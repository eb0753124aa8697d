"""GPU acceptance checks of the engine, one fresh process per check, results as JSON.

    python tests/accelerator/acceptance.py --platform cuda --out results.json

Checks (``--platform cpu`` runs the ones that mean something without a GPU; CI does that):
  fp32_cuda_equals_cpu   fp32 engine on CUDA vs on CPU: log-probs and one update's params <= 1e-5
  bf16_dtypes_and_hf     bf16 params, fp32 main params and grad buffer; log-probs close to transformers bf16
  offload                offload frees >= 95% of the engine's device memory; onload + update bit-identical
                         to a never-offloaded twin
  save_load              save / update / load restores parameters and optimizer bit for bit
  cpu_tensor_collectives the platform's world group (cpu:gloo,cuda:nccl) carries CPU tensors and objects
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

SEQ, ROWS, RESP = 24, 4, 8


def _model():
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config

    return tiny_qwen2_config(num_hidden_layers=2, hidden_size=128, intermediate_size=256, vocab_size=512,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def _batch():
    import torch

    g = torch.Generator().manual_seed(11)
    return {"input_ids": torch.randint(2, 500, (ROWS, SEQ), generator=g), "attention_mask": torch.ones(ROWS, SEQ, dtype=torch.long),
            "response_mask": torch.ones(ROWS, RESP, dtype=torch.long), "advantages": torch.randn(ROWS, RESP, generator=g)}


def _engine(dtype="fp32", **kw):
    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig

    return MegatronEngine(_model(), MegatronEngineConfig(micro_batch_size=2, params_dtype=dtype, lr=1e-3, seed=7,
                                                         use_distributed_optimizer=False, **kw))


def _loss():
    from mindspeed_rl.algorithms import PolicyLossConfig, grpo_loss

    return grpo_loss(PolicyLossConfig(use_kl_loss=False))


def _weights(engine):
    return {k: v.detach().float().cpu().clone() for k, v in engine.export_hf_weights()}


# ---- checks: each runs in its own process, in a world of one rank on the platform's backend ----
def fp32_run():
    e = _engine()
    lp = e.infer_batch(_batch())["log_probs"].cpu()
    e.train_batch(_batch(), _loss())
    return {"log_probs": lp, "weights": _weights(e)}


def bf16_dtypes_and_hf():
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    e = _engine("bf16")
    from mindspeed_rl.engine.megatron_engine import unwrap

    params = {p.dtype for p in unwrap(e.model).parameters()}
    mains = {p.dtype for opt in (getattr(e.optimizer, "chained_optimizers", None) or [e.optimizer])
             for g in opt.optimizer.param_groups for p in g["params"]}
    grads = {b.grad_data.dtype for b in e.model.buffers}
    lp = e.infer_batch(_batch())["log_probs"].float().cpu()
    hf = AutoModelForCausalLM.from_config(Qwen2Config(**_model()), dtype=torch.bfloat16)
    hf.load_state_dict(_weights(e), strict=False)
    hf.to(e.device).eval()
    b = _batch()
    with torch.no_grad():
        logits = hf(b["input_ids"].to(e.device)).logits.float().log_softmax(-1).cpu()
    ref = logits[:, SEQ - RESP - 1:SEQ - 1].gather(-1, b["input_ids"][:, SEQ - RESP:].unsqueeze(-1)).squeeze(-1)
    diff = float((lp - ref).abs().max())
    ok = params == {torch.bfloat16} and mains == {torch.float32} and grads == {torch.float32} and diff < 0.1
    return {"ok": ok, "params": str(params), "main_params": str(mains), "grad_buffer": str(grads), "max_abs_diff_vs_hf": diff}


def offload():
    import torch

    from mindspeed_rl.platform import current_platform

    platform = current_platform()
    a, twin = _engine("bf16"), _engine("bf16")
    for e in (a, twin):
        e.train_batch(_batch(), _loss())
    platform.synchronize()
    if platform.name == "cpu":
        total = sum(p.nbytes() for p in _engine_storages(a))
        a.offload()
        left = sum(p.nbytes() for p in _engine_storages(a))
    else:
        total = platform.memory_allocated()
        a.offload()
        platform.synchronize()
        left = platform.memory_allocated()
    freed = 1 - left / total
    a.onload()
    for e in (a, twin):
        e.train_batch(_batch(), _loss())
    same = all(torch.equal(x, y) for x, y in zip(_weights(a).values(), _weights(twin).values()))
    return {"ok": freed >= 0.95 and same, "freed_fraction": freed, "device_bytes_before": total, "identical_to_twin": same}


def _engine_storages(e):
    seen = {}
    for kind in ("params", "grads", "optimizer"):
        for t in e._tensors_of(kind):
            st = t.untyped_storage()
            seen[st.data_ptr() or id(st)] = st
    return list(seen.values())


def save_load():
    import torch

    e = _engine("bf16")
    e.train_batch(_batch(), _loss())
    before = _weights(e)
    with tempfile.TemporaryDirectory() as d:
        e.save_checkpoint(d)
        e.train_batch(_batch(), _loss())
        e.load_checkpoint(d)
        after_load = _weights(e)
        e.train_batch(_batch(), _loss())
        again = _weights(e)
        e.load_checkpoint(d)
        e.train_batch(_batch(), _loss())
        replay = _weights(e)
    same = all(torch.equal(before[k], after_load[k]) for k in before)
    replayed = all(torch.equal(again[k], replay[k]) for k in again)
    return {"ok": same and replayed, "params_restored": same, "update_after_load_identical": replayed}


def cpu_tensor_collectives():
    import torch
    import torch.distributed as dist

    t = torch.tensor([3.0])
    dist.all_reduce(t)
    objs = [{"step": 1}]
    dist.broadcast_object_list(objs, src=0)
    return {"ok": float(t) == 3.0 and objs[0]["step"] == 1, "backend": dist.get_backend_config()}


def _child(name, platform, port, queue):
    os.environ.update({"MINDSPEED_RL_PLATFORM": platform, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "LOCAL_RANK": "0"})
    try:
        import torch

        from mindspeed_rl.platform import current_platform

        current_platform().init_process_group(0, 1)
        out = globals()[name]()
        buf = io.BytesIO()
        torch.save(out, buf)
        queue.put(("ok", buf.getvalue()))
    except BaseException:  # noqa: BLE001 - reported to the parent
        queue.put(("error", traceback.format_exc()))


def run_check(name: str, platform: str, timeout: float = 300.0):
    import torch

    from mindspeed_rl.utils.net import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, platform, free_port(), queue))
    proc.start()
    status, payload = queue.get(timeout=timeout)
    proc.join(60)
    if status != "ok":
        raise RuntimeError(f"{name} on {platform} failed:\n{payload}")
    return torch.load(io.BytesIO(payload), weights_only=False)


def fp32_cuda_equals_cpu():
    cpu, cuda = run_check("fp32_run", "cpu"), run_check("fp32_run", "cuda")
    lp = float((cpu["log_probs"] - cuda["log_probs"]).abs().max())
    w = max(float((cpu["weights"][k] - cuda["weights"][k]).abs().max()) for k in cpu["weights"])
    return {"ok": lp <= 1e-5 and w <= 1e-5, "log_probs_max_abs_diff": lp, "params_max_abs_diff": w}


CHECKS = ("fp32_cuda_equals_cpu", "bf16_dtypes_and_hf", "offload", "save_load", "cpu_tensor_collectives")
CPU_CHECKS = ("offload", "save_load", "cpu_tensor_collectives")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--out", default="accelerator_results.json")
    parser.add_argument("--checks", nargs="*", default=None)
    args = parser.parse_args()
    names = args.checks or (CHECKS if args.platform == "cuda" else CPU_CHECKS)
    import torch

    if args.platform == "cuda" and not torch.cuda.is_available():
        # no device (or a CPU-only torch): say so and stop, instead of failing every check on it
        reason = f"no CUDA device visible to torch {torch.__version__}"
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"platform": "cuda", "all_passed": None, "skipped": reason, "checks": {}}, f, indent=1)
        print(f"SKIPPED: {reason}; nothing was checked (results: {args.out})")
        return 0
    results = {}
    for name in names:
        start = time.perf_counter()
        try:
            res = fp32_cuda_equals_cpu() if name == "fp32_cuda_equals_cpu" else run_check(name, args.platform)
        except Exception as exc:  # noqa: BLE001 - one failed check does not hide the others
            res = {"ok": False, "error": str(exc)[-3000:]}
        res["seconds"] = round(time.perf_counter() - start, 1)
        results[name] = res
        print(f"{name}: {'PASS' if res['ok'] else 'FAIL'} {json.dumps({k: v for k, v in res.items() if k != 'error'})}",
              flush=True)
    summary = {"platform": args.platform, "all_passed": all(r["ok"] for r in results.values()), "checks": results}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, default=str)
    print(f"results: {args.out}")
    return 0 if summary["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
