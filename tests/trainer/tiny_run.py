"""A tiny GRPO run for the trainer tests: tokenizer, model, data and converted checkpoint built in
seconds with the suite's own APIs (template, preprocessor, converter)."""
from pathlib import Path

from mindspeed_rl.config import load_config


def build_assets(work: Path, seed: int = 7, hidden_size: int = 32) -> Path:
    """hidden_size 128 gives head dim 32, the smallest vLLM's CPU attention accepts."""
    from mindspeed_rl.data import load_template
    from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
    from mindspeed_rl.demo.assets import arithmetic_problems, build_tiny_model, reference_response, train_tokenizer, write_jsonl
    from mindspeed_rl.models.convert import hf_to_mcore

    rows = arithmetic_problems(seed, 64)
    write_jsonl(rows, work / "train.jsonl")
    template = load_template("qwen_r1")
    texts = [template.render(r["problem"]) + reference_response(r, s) for r in rows for s in range(3)]
    tokenizer = train_tokenizer(texts, work / "hf", vocab_size=512)
    build_tiny_model(tokenizer, work / "hf", seed=seed, hidden_size=hidden_size, num_layers=2, max_position_embeddings=512)
    preprocess(PreprocessConfig(input=str(work / "train.jsonl"), handler="flat",
                                map_keys={"prompt": "problem", "response": "answer"}, template="qwen_r1",
                                tokenizer_name_or_path=str(work / "hf"), output_prefix=str(work / "data" / "train"),
                                max_prompt_length=200, workers=1, progress=False), log=lambda *a, **k: None)
    for tp in (1, 2):
        hf_to_mcore(str(work / "hf"), str(work / f"mcore_tp{tp}"), tp=tp, pp=1, quiet=True)
    return work


def tiny_config(work: Path, overrides: list[str] = ()):
    return load_config("grpo_tiny_cpu", tiny_overrides(work, overrides))


def tiny_overrides(work: Path, overrides: list[str] = ()) -> list[str]:
    """The ``key=value`` overrides of a tiny run on ``grpo_tiny_cpu`` (also usable on the CLI)."""
    base = [
        f"megatron_training.tokenizer_name_or_path={work / 'hf'}",
        f"megatron_training.data_path={work / 'data' / 'train'}",
        f"megatron_training.log_dir={work / 'runs'}",
        "megatron_training.save=", "megatron_training.save_interval=0",
        "megatron_training.global_batch_size=4", "megatron_training.seq_length=256",
        "megatron_training.max_prompt_length=200",
        "rl_config.n_samples_per_prompt=4", "rl_config.verifier_num_workers=1",
        "rl_config.save_samples_interval=0", "rl_config.test_freq=0", "rl_config.test_before_train=false",
        "rl_config.val_datasets=[]",
        "actor_config.micro_batch_size=4", "actor_config.mini_batch_size=2", "actor_config.lr=1e-3",
        "ref_config.micro_batch_size=4",
        f"actor_config.load={work / 'mcore_tp1'}",
        f"ref_config.load={work / 'mcore_tp1'}",
        "generate_config.sampling_config.max_tokens=12", "generate_config.max_model_len=256",
    ]
    return base + list(overrides)
