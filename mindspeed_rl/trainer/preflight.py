"""Checks the driver runs after loading the tokenizer and opening the dataset, before Ray or any
worker starts: the tokenizer, the model's vocabulary and the dataset must belong together, and the
output directories must take files. Each problem names both sides and the key to change."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.utils.fs import FileFormatError, check_output_dir, read_json, stale_temp_entries

TOKENIZER_KEY = "megatron_training.tokenizer_name_or_path"


def tokenizer_fingerprint(tokenizer) -> str:
    """The preprocessor's fingerprint of a tokenizer (its whole token -> id map)."""
    from mindspeed_rl.data.fingerprint import vocab_fingerprint

    return vocab_fingerprint(tokenizer.get_vocab())


class _LightTokenizer:
    """The few tokenizer facts the checks need, from tokenizer.json through ``tokenizers`` (no
    transformers import, which costs seconds)."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict:
        return self._tok.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, token: str):
        return self._tok.token_to_id(token)


def load_tokenizer_for_checks(path: str):
    if (Path(path) / "tokenizer.json").is_file():
        try:
            return _LightTokenizer(Path(path) / "tokenizer.json")
        except Exception:  # noqa: BLE001 - transformers may still read it; it reports its own error
            pass
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def model_config(cfg) -> tuple[str, dict]:
    """(path, contents) of the HF config.json the engines build from; a damaged file is named."""
    hf_dir = cfg.model.hf_config_dir or cfg.megatron_training.tokenizer_name_or_path
    path = Path(hf_dir) / "config.json"
    key = "model.hf_config_dir" if cfg.model.hf_config_dir else TOKENIZER_KEY
    try:
        return str(path), read_json(path, "model config")
    except FileFormatError as exc:
        raise ConfigError([Problem(key, hf_dir, str(exc), "fix the file or point the key at the right model")]) from None


def _max_token_id(prefix: str, budget_bytes: int = 1 << 30) -> int:
    """Largest prompt token id (the first ``budget_bytes`` of a huge dataset)."""
    from mindspeed_rl.data.indexed import PROMPT, part_prefix

    path = part_prefix(prefix, PROMPT) + ".bin"
    size = os.path.getsize(path)
    if size == 0:
        return -1
    data = np.memmap(path, dtype=np.int32, mode="r", shape=(min(size, budget_bytes) // 4,))
    return int(data.max()) if data.size else -1


def check_vocabulary(cfg, tokenizer, dataset) -> list[Problem]:
    """Tokenizer vs model vocabulary vs the tokenizer the dataset was made with (``dataset``: anything
    with ``meta``, ``prefix`` and ``len``)."""
    out: list[Problem] = []
    mt = cfg.megatron_training
    config_path, hf = model_config(cfg)
    vocab = int(hf.get("vocab_size", 0))
    n_tok = len(tokenizer)
    model_key = "model.hf_config_dir" if cfg.model.hf_config_dir else TOKENIZER_KEY
    if vocab and n_tok > vocab:
        out.append(Problem(TOKENIZER_KEY, mt.tokenizer_name_or_path,
                           f"this tokenizer has {n_tok} tokens but the model ({config_path}) has vocab_size {vocab}: "
                           "token ids past the embedding would train on garbage",
                           "use the model's own tokenizer (its HF directory), or set model.hf_config_dir to the model "
                           "this tokenizer belongs to"))
    meta = dataset.meta.get("tokenizer", {})
    meta_file = f"{dataset.prefix}_meta.json"
    made_with = meta.get("path", "?")
    if "vocab_size" in meta and int(meta["vocab_size"]) != n_tok:
        out.append(Problem("megatron_training.data_path", mt.data_path,
                           f"the dataset was tokenised with {made_with} ({meta['vocab_size']} tokens, {meta_file}) but "
                           f"{TOKENIZER_KEY}={mt.tokenizer_name_or_path!r} has {n_tok} tokens",
                           "preprocess the data with the run's tokenizer, or point the tokenizer key at the one the "
                           "data was made with"))
    elif meta.get("fingerprint") and meta["fingerprint"] != tokenizer_fingerprint(tokenizer):
        out.append(Problem("megatron_training.data_path", mt.data_path,
                           f"the dataset was tokenised with {made_with} ({meta_file}, fingerprint {meta['fingerprint']}); "
                           f"{TOKENIZER_KEY}={mt.tokenizer_name_or_path!r} is a different tokenizer of the same size "
                           f"(fingerprint {tokenizer_fingerprint(tokenizer)})",
                           "preprocess the data with the run's tokenizer"))
    else:
        for token, tid in (meta.get("special_tokens") or {}).items():
            mine = tokenizer.convert_tokens_to_ids(token)
            if mine != tid:
                out.append(Problem("megatron_training.data_path", mt.data_path,
                                   f"{token} is id {tid} in the dataset's tokenizer ({made_with}, {meta_file}) but "
                                   f"{mine} in {TOKENIZER_KEY}={mt.tokenizer_name_or_path!r}",
                                   "preprocess the data with the run's tokenizer"))
                break
    if vocab and len(dataset):
        top = _max_token_id(dataset.prefix)
        if top >= vocab:
            out.append(Problem("megatron_training.data_path", mt.data_path,
                               f"the prompts hold token id {top}, past the model's vocab_size {vocab} ({config_path})",
                               "preprocess the data with the model's tokenizer"))
    for key, load in (("actor_config.load", cfg.actor_config.load), ("ref_config.load", cfg.ref_config.load)):
        if not load or not vocab:
            continue
        meta_path = Path(load) / "convert_meta.json"
        if not meta_path.is_file():
            continue
        try:
            saved = read_json(meta_path, "checkpoint metadata").get("hf_config", {}).get("vocab_size")
        except (FileFormatError, AttributeError) as exc:
            out.append(Problem(key, load, str(exc), "convert the checkpoint again"))
            continue
        if saved is not None and int(saved) != vocab:
            out.append(Problem(key, load, f"the checkpoint was converted from a model with vocab_size {saved} "
                                          f"({meta_path}); the run's model ({config_path}) has {vocab}",
                               f"convert {model_key}'s model, or point {model_key} at the model the checkpoint came from"))
    return out


def check_outputs(cfg, log=print) -> list[Problem]:
    """Output directories take files, and temp files of killed runs are reported."""
    mt = cfg.megatron_training
    out = []
    for key, path in (("megatron_training.save", mt.save), ("megatron_training.log_dir", mt.log_dir)):
        if path:
            why = check_output_dir(path, key)
            if why:
                out.append(Problem(key, path, why, "choose a writable directory"))
    if mt.save and Path(mt.save).is_dir():
        for entry in sorted(Path(mt.save).glob("iter_*.tmp")) + stale_temp_entries(mt.save):
            log(f"note: {entry} was left by an interrupted save; it is not a checkpoint and the next save removes it")
    return out


def check_validation_sets(cfg) -> list[Problem]:
    """Every ``rl_config.val_datasets`` entry is a valid evaluation config (keys, values, presets)."""
    rl = cfg.rl_config
    if not rl.val_datasets:
        return []
    from mindspeed_rl.evaluation.validation import validation_configs

    try:
        validation_configs(rl.val_datasets, source="rl_config.val_datasets")
    except ConfigError as exc:
        return list(exc.problems)
    except ValueError as exc:
        return [Problem("rl_config.val_datasets", rl.val_datasets, str(exc), "fix the held-out set entry")]
    return []


def preflight(cfg, tokenizer, dataset, log=print) -> None:
    """Every check above; raises one ConfigError listing all problems."""
    problems = check_validation_sets(cfg) + check_vocabulary(cfg, tokenizer, dataset) + check_outputs(cfg, log)
    if problems:
        raise ConfigError(problems)


class _DatasetFiles:
    """A preprocessed dataset's metadata and sizes, read without megatron-core (which costs seconds
    to import): enough for the checks above."""

    def __init__(self, prefix: str):
        from mindspeed_rl.data.indexed import LABEL, PROMPT, check_indexed_files, meta_path, part_prefix

        self.prefix = prefix
        try:
            self.meta = read_json(meta_path(prefix), "dataset metadata")
        except FileFormatError as exc:
            raise ConfigError([Problem("megatron_training.data_path", prefix, str(exc),
                                       "preprocess the dataset again (cli/preprocess_data.py)")]) from None
        for part in (PROMPT, LABEL):
            why = check_indexed_files(part_prefix(prefix, part))
            if why:
                raise ConfigError([Problem("megatron_training.data_path", prefix, f"{why}; the dataset is damaged",
                                           "preprocess the dataset again (cli/preprocess_data.py)")])
        self.rows = int(self.meta.get("counts", {}).get("rows_written", 0))

    def __len__(self) -> int:
        return self.rows


def run_preflight(cfg, log=print) -> None:
    """Every driver-side check, with light imports only (no megatron-core, Ray or model): the
    command line calls it before anything heavy, so a refusal comes in seconds."""
    from mindspeed_rl.config import check_inputs_exist
    from mindspeed_rl.trainer.resume_check import plan_resume

    check_inputs_exist(cfg)
    dataset = _DatasetFiles(cfg.megatron_training.data_path)
    tokenizer = load_tokenizer_for_checks(cfg.megatron_training.tokenizer_name_or_path)
    preflight(cfg, tokenizer, dataset, log)
    plan_resume(cfg, log=lambda _m: None)  # its notes are printed once, when the trainer resumes

