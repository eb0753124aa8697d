"""The SFT trainer on the Megatron engine: its first loss equals transformers + torch's smoothed
cross-entropy over the assistant tokens; the trained weights agree across TP1 / TP2 / DP2 / PP2 / TP2xPP2 and micro-batch
splits (fixed size, token budget) within 1e-5 (relative, per tensor, as tests/engine); a run resumed from a checkpoint ends with exactly the
weights of the uninterrupted run; the exported HF directory loads in transformers."""
import dataclasses
import os

import pytest
import torch
import torch.nn.functional as F

from mindspeed_rl.sft.trainer import train_sft_rank
from mindspeed_rl.utils.rank_processes import run_distributed
from tests.sft.sft_testlib import read_metrics, read_weights, sft_config, tiny_hf_dir, write_rows

pytestmark = pytest.mark.dist


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    return tiny_hf_dir(root), write_rows(root / "train.jsonl"), root


def _run(cfg):
    return run_distributed(train_sft_rank, cfg.world_size, cfg, timeout=600)


def _hf_first_loss(hf_dir, cfg):
    """Step 1's loss by transformers + F.cross_entropy(label_smoothing) on the step's rows."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mindspeed_rl.sft.data import load_examples, step_rows

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    examples = load_examples(cfg.data.train_path, cfg.data, tok)
    total, count = 0.0, 0
    for i in step_rows(len(examples), cfg.train.global_batch_size, cfg.train.seed, 0):
        ex = examples[i]
        ids = torch.tensor([ex.prompt_ids + ex.response_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(ex.prompt_ids) - 1:-1]
        per_token = F.cross_entropy(logits[:, :model.config.vocab_size], ids[0, len(ex.prompt_ids):],
                                    label_smoothing=cfg.train.label_smoothing, reduction="none")
        mask = torch.tensor(ex.loss_mask, dtype=torch.bool)
        total += float(per_token[mask].sum())
        count += int(mask.sum())
    return total / count


@pytest.mark.slow
def test_first_loss_matches_hf_and_update_is_layout_invariant(setup):
    hf_dir, rows, root = setup
    runs = {
        "tp1_mbs2": dict(),
        "tp2_mbs1": dict(tensor_model_parallel_size=2, micro_batch_size=1),
        "dp2_token_budget": dict(data_parallel_size=2, max_tokens_per_micro_batch=128),
        # pipeline stages (the 32B recipe runs TP8 x PP4): the loss on the last stage, tied embeddings synced
        "pp2_mbs2": dict(pipeline_model_parallel_size=2),
        "tp2_pp2_mbs1": dict(tensor_model_parallel_size=2, pipeline_model_parallel_size=2, micro_batch_size=1),
    }
    weights, first = {}, {}
    for name, train in runs.items():
        # adam_eps 1e-6 as in tests/engine/engine_ranks.py: layer 1's k_proj.bias has an exactly zero
        # gradient, whose roundoff Adam would otherwise scale up to lr-sized, layout-dependent steps
        # 12 rows a step: every row, the chat row with its masked turns too, is in step 1's loss
        cfg = sft_config(hf_dir, rows, str(root / name), lr=1e-3, adam_eps=1e-6, global_batch_size=12, **train)
        _run(cfg)
        weights[name] = read_weights(cfg.export_hf_dir)
        first[name] = read_metrics(cfg.save)[0]["sft_loss"]
    ref_loss = _hf_first_loss(hf_dir, sft_config(hf_dir, rows, str(root / "ref"), global_batch_size=12))
    for name in runs:
        assert abs(first[name] - ref_loss) <= 1e-5, (name, first[name], ref_loss)
    base = weights["tp1_mbs2"]
    init = read_weights(hf_dir)
    assert max(_rel(base[k], init[k]) for k in base) > 1e-4  # the update is large enough to show a layout bug
    for name in ("tp2_mbs1", "dp2_token_budget", "pp2_mbs2", "tp2_pp2_mbs1"):
        for k in base:
            assert _rel(weights[name][k], base[k]) <= 1e-5, (name, k, _rel(weights[name][k], base[k]))


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


@pytest.mark.slow
def test_resume_continues_exactly_and_export_loads(setup):
    from transformers import AutoModelForCausalLM

    from mindspeed_rl.utils.fs import write_tracker

    hf_dir, rows, root = setup
    full = sft_config(hf_dir, rows, str(root / "full"), train_iters=4, save_interval=2, eval_interval=2)
    _run(full)
    # the same run, interrupted after its step-2 checkpoint: drop step 4 and point the tracker back
    cut = dataclasses.replace(full, save=str(root / "cut"), log_dir=str(root / "cut" / "logs"),
                              export_hf_dir=str(root / "cut" / "hf"))
    import shutil

    shutil.copytree(full.save, cut.save, ignore=shutil.ignore_patterns("hf", "logs", "iter_0000004"))
    write_tracker(cut.save, 2)
    _run(cut)
    a, b = read_weights(full.export_hf_dir), read_weights(cut.export_hf_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = read_metrics(cut.save)
    assert [r["step"] for r in log] == [3, 4]  # only the steps after the checkpoint were trained
    assert [r["sft_loss"] for r in log] == [r["sft_loss"] for r in read_metrics(full.save)[2:]]
    assert "val/loss" in log[-1]
    model = AutoModelForCausalLM.from_pretrained(full.export_hf_dir)
    assert torch.equal(model.state_dict()["model.norm.weight"], a["model.norm.weight"])
    assert os.path.isfile(os.path.join(full.export_hf_dir, "tokenizer.json"))
