"""The template-based preprocessor: rows -> template text -> token ids -> Megatron indexed dataset.

``preprocess(PreprocessConfig(...))`` reads the input, renders every row with the chat template,
tokenises in ``workers`` processes, writes prompts and labels to temp-named indexed files, checks
the reject fraction and only then renames everything into place and writes ``<prefix>_meta.json``.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import platform as _platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from .encoding import ChunkResult, EncoderSpec, RowEncoder, encode_in_worker, init_worker, save_spec
from .fingerprint import vocab_fingerprint
from .handlers import get_handler
from .indexed import PromptLabelWriter, meta_path, rejects_path
from .readers import InputError, RowBlock, columns_of, detect_format, expand_inputs, iter_blocks
from .templates import load_template
from mindspeed_rl.utils.fs import atomic_write_text, check_output_dir, remove_quietly, remove_stale_temp

REPO_ROOT = Path(__file__).resolve().parents[2]
META_VERSION = 1


class PreprocessError(RuntimeError):
    """The run failed; the message carries the summary or names the key to fix."""


@dataclass
class PreprocessConfig:
    """Every field has a default; configs/datasets/*.yaml set the dataset-specific ones."""

    # Root used by the dataset configs' ${data_dir}/... defaults; override once for a cluster.
    data_dir: str = "../shared/data"
    # A file (.json list, .jsonl, .parquet), a `datasets` save_to_disk dir, a glob, or a
    # comma-separated list. Relative paths: the current directory first, then the repo root.
    input: str = ""
    # auto | json | jsonl | parquet | hf_disk ("auto" looks at the suffix/contents).
    input_format: str = "auto"
    # Row layout: chat (verl message list + reward_model.ground_truth), flat, gsm8k, or your own.
    handler: str = "chat"
    # Dotted module imported before the handler lookup, for @register_handler in user code.
    handler_module: Optional[str] = None
    # prompt/query/response/system -> column (dotted paths reach into structs); merged over
    # the handler's defaults. null removes a default.
    map_keys: Dict[str, Optional[str]] = field(default_factory=dict)
    # Template name in templates_path (configs/model/templates.json when null).
    template: str = "qwen_r1"
    templates_path: Optional[str] = None
    # Replaces the template's default system prompt (a system message in the row still wins).
    system_prompt: Optional[str] = None
    # A local tokenizer directory (transformers AutoTokenizer; a fast tokenizer is required).
    tokenizer_name_or_path: str = "${data_dir}/tokenizers/qwen2"
    # Output files are <output_prefix>_{prompt,label}.{bin,idx}, _meta.json, _rejects.jsonl.
    output_prefix: str = "outputs/data/dataset"
    # Rows whose prompt is longer (in tokens) are rejected, counted and listed. 0 = no limit.
    max_prompt_length: int = 2048
    # Fail (and publish nothing) when more than this fraction of rows is rejected.
    max_reject_fraction: float = 0.01
    # Tokenizer processes; 1 tokenises in this process with the Rust thread pool.
    workers: int = 1
    # Rows per task sent to a worker (one batch-encode call, one bulk write).
    chunk_size: int = 512
    # Decode every prompt and compare with the rendered text (a row that differs is rejected).
    verify_roundtrip: bool = True
    # Process only the first N rows (smoke tests); recorded in the metadata.
    max_rows: Optional[int] = None
    # Replace an existing dataset at output_prefix; false makes an existing one an error.
    overwrite: bool = True
    # Show a tqdm progress bar.
    progress: bool = True


# fields that do not change the output: left out of the config hash
_HASH_EXCLUDE = {"workers", "chunk_size", "progress", "overwrite", "data_dir"}


def resolve_path(value: str, key: str, must_exist: bool = True) -> str:
    """Absolute paths as given; relative ones against the cwd, then the repository root."""
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.exists():
            return str(c)
    if not must_exist:
        return str(candidates[0])
    tried = ", ".join(str(c) for c in candidates)
    raise InputError(f"{key}={value!r} not found (tried {tried}); pass {key}=<absolute path>")


def _resolve_inputs(spec: str) -> List[Path]:
    parts = []
    for part in [s.strip() for s in str(spec).split(",") if s.strip()]:
        if Path(part).is_absolute():
            parts.append(part)
            continue
        # first base directory in which the file (or some glob match) exists
        for base in dict.fromkeys((Path.cwd(), REPO_ROOT)):
            try:
                expand_inputs(str(base / part))
                parts.append(str(base / part))
                break
            except InputError:
                continue
        else:
            raise InputError(
                f"input={part!r} matches nothing (looked in {sorted({str(Path.cwd()), str(REPO_ROOT)})}); pass "
                "input=<absolute path>, or data_dir=<dir holding math/...> (env MINDSPEED_RL_DATA_DIR)"
            )
    if not parts:
        raise InputError("input is empty; set input=<file, glob or datasets directory>")
    return expand_inputs(",".join(parts))


def config_hash(cfg: PreprocessConfig, template: Dict[str, Any]) -> str:
    payload = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _HASH_EXCLUDE}
    payload["template_spec"] = template
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_tokenizer(path: str):
    """A fast HF tokenizer from a local dir (hub ids are tried as given)."""
    from transformers import AutoTokenizer

    local = Path(path).is_dir()
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # transformers raises several types for a bad path
        hint = "" if local else " (not a local directory; download the tokenizer and pass its directory)"
        raise InputError(f"tokenizer_name_or_path={path!r} cannot be loaded{hint}: {exc}") from exc
    if not getattr(tok, "is_fast", False):
        raise InputError(
            f"tokenizer_name_or_path={path!r} gives a slow tokenizer ({type(tok).__name__}); "
            "the preprocessor needs a fast one (install `tokenizers`, or add tokenizer.json)"
        )
    return tok


def check_template_tokens(tok, template, tokenizer_path: str) -> None:
    """Each special token the template uses must be one token, or prompts would be garbage."""
    bad = [t for t in template.special_tokens if len(tok.backend_tokenizer.encode(t, add_special_tokens=False).ids) != 1]
    if bad:
        raise InputError(
            f"template {template.name!r} uses {bad}, which the tokenizer at {tokenizer_path} does not have "
            "as single tokens; pick a template made for this tokenizer (template=...)"
        )


def _explain_no_columns(path: Path, input_format: str) -> None:
    """No column found: say whether the file is empty or its first rows are unreadable, rather
    than report the mapped column as missing."""
    from .readers import iter_rows

    first = next(iter_rows([path], input_format, limit=100), None)
    if first is None:
        raise InputError(f"input file {path} is empty (no rows); point input= at the dataset file")
    errors = [r.error for r in iter_rows([path], input_format, limit=100) if r.data is None]
    if errors:
        raise InputError(f"{path}: none of its first rows is a readable JSON object (e.g. {errors[0]}); "
                         "fix the file or check input_format")


def _start_pool(workers: int):
    """Worker processes started before the tokenizer is loaded: their start-up overlaps with it."""
    if workers <= 1:
        return None
    import multiprocessing as mp

    # spawn: the parent's tokenizer thread pool must not be forked
    return mp.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(None, True))


def _run_chunks(spec: EncoderSpec, blocks: Iterator[RowBlock], pool, workers: int, spec_path: str
                ) -> Iterator[ChunkResult]:
    """Encoded blocks in input order; a bounded number in flight (bounded memory).

    This process only cuts the input into blocks and writes results; parsing, rendering,
    tokenising and verifying happen in the workers, so it stays off the cores they use.
    """
    if pool is None:
        encoder = RowEncoder(spec)
        for block in blocks:
            yield encoder.encode_chunk(block)
        return
    save_spec(spec, spec_path)  # each worker loads it with its first task
    window: collections.deque = collections.deque()
    for block in blocks:
        window.append(pool.apply_async(encode_in_worker, (block, spec_path)))
        if len(window) >= 4 * workers:
            yield window.popleft().get()
    while window:
        yield window.popleft().get()


def _summary_text(summary: Dict[str, Any]) -> str:
    c = summary["counts"]
    lines = [
        f"rows read: {c['rows_read']}  written: {c['rows_written']}  rejected: {c['rows_rejected']} "
        f"({c['reject_fraction']:.2%}, limit {summary['max_reject_fraction']:.2%})",
    ]
    for reason, n in sorted(summary["rejects_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  rejected {reason}: {n}")
    if c["rows_written"]:
        lines.append(
            f"prompt tokens: total {c['prompt_tokens']}, mean {c['prompt_tokens'] / c['rows_written']:.1f}, "
            f"max {c['max_prompt_tokens']}"
        )
    lines.append(f"time: {summary['elapsed_s']:.2f}s ({summary['rows_per_s']:.0f} rows/s)")
    if summary.get("rejects_file"):
        lines.append(f"rejects listed in {summary['rejects_file']}")
    return "\n".join(lines)


def _resolved(cfg: PreprocessConfig) -> PreprocessConfig:
    """Resolve ${...} interpolations (the default tokenizer path uses ${data_dir})."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.structured(cfg))


def preprocess(cfg: PreprocessConfig, log=print) -> Dict[str, Any]:
    """Run the whole pipeline; returns the metadata dict (also written to <prefix>_meta.json)."""
    t0 = time.perf_counter()
    cfg = _resolved(cfg)
    if not 0.0 <= cfg.max_reject_fraction <= 1.0:
        raise InputError(f"max_reject_fraction={cfg.max_reject_fraction} must be within [0, 1]")
    if cfg.workers < 1 or cfg.chunk_size < 1:
        raise InputError(f"workers={cfg.workers} and chunk_size={cfg.chunk_size} must be >= 1")
    template = load_template(cfg.template, cfg.templates_path)
    handler = get_handler(cfg.handler, dict(cfg.map_keys or {}), cfg.handler_module)
    paths = _resolve_inputs(cfg.input)
    read_columns = {}
    for p in paths:  # a missing mapped column fails now, naming the column list
        cols = columns_of(p, detect_format(p, cfg.input_format))
        if not cols:
            _explain_no_columns(p, cfg.input_format)
        handler.check_columns(cols, str(p))
        read_columns[str(p)] = handler.needed_columns(cols)

    prefix = resolve_path(cfg.output_prefix, "output_prefix", must_exist=False)
    if not cfg.overwrite and os.path.exists(meta_path(prefix)):
        raise PreprocessError(f"{meta_path(prefix)} exists; set overwrite=true or another output_prefix")
    unwritable = check_output_dir(Path(prefix).parent, "output_prefix")
    if unwritable:
        raise InputError(f"{unwritable}; pass output_prefix=<a writable directory>/<name>")
    remove_stale_temp(Path(prefix).parent, Path(prefix).name, log=log)
    pool = _start_pool(cfg.workers)
    try:
        return _preprocess(cfg, template, handler, paths, read_columns, prefix, pool, t0, log)
    finally:
        if pool is not None:
            pool.terminate()  # the results are all in; nothing is left for the workers to do
            pool.join()


def _preprocess(cfg, template, handler, paths, read_columns, prefix, pool, t0, log) -> Dict[str, Any]:
    """Load the tokenizer (the workers are starting meanwhile), encode, write, check, publish."""
    tok_path = resolve_path(cfg.tokenizer_name_or_path, "tokenizer_name_or_path", must_exist=False)
    tok = load_tokenizer(tok_path if Path(tok_path).exists() else cfg.tokenizer_name_or_path)
    check_template_tokens(tok, template, tok_path)
    special_texts = sorted({t.content for t in tok.added_tokens_decoder.values() if t.special})

    spec = EncoderSpec(
        tokenizer_json=tok.backend_tokenizer.to_str(),
        template=template.to_dict(),
        handler=cfg.handler,
        map_keys=dict(handler.map_keys),
        handler_module=cfg.handler_module,
        system_prompt=cfg.system_prompt,
        max_prompt_length=cfg.max_prompt_length,
        verify_roundtrip=cfg.verify_roundtrip,
        special_token_texts=special_texts,
    )
    log(f"[preprocess] {len(paths)} file(s) -> {prefix}_*  template={template.name} handler={cfg.handler} "
        f"workers={cfg.workers}")

    writer: Optional[PromptLabelWriter] = None
    spec_path = ""
    rejects: List[tuple] = []
    by_reason: collections.Counter = collections.Counter()
    rows_read = prompt_tokens = max_tokens = 0
    published = False
    try:
        from tqdm import tqdm

        writer = PromptLabelWriter(prefix)
        spec_path = f"{writer.tmp_prefix}_spec.pkl"  # the tokenizer and template, for the workers
        bar = tqdm(unit="rows", disable=not cfg.progress, desc="preprocess", file=sys.stderr)
        blocks = iter_blocks(paths, cfg.input_format, limit=cfg.max_rows, columns=read_columns,
                             block_size=cfg.chunk_size)
        for result in _run_chunks(spec, blocks, pool, cfg.workers, spec_path):
            writer.add_many(result.ids, result.lengths, result.labels, result.label_lengths)
            max_tokens = max(max_tokens, result.max_prompt_tokens)
            prompt_tokens += result.prompt_tokens
            for rej in result.rejects:
                rejects.append(rej)
                by_reason[rej[3]] += 1
            if len(result.indices) + len(result.rejects) != result.rows:  # every row is kept or counted
                raise PreprocessError(f"internal error: a chunk of {result.rows} rows returned "
                                      f"{len(result.indices)} kept + {len(result.rejects)} rejected")
            rows_read += result.rows
            bar.update(result.rows)
            bar.set_postfix(rejected=len(rejects), refresh=False)
        bar.close()
        writer.finalize()

        elapsed = time.perf_counter() - t0
        frac = len(rejects) / rows_read if rows_read else 0.0
        rej_file = rejects_path(prefix)
        if rejects:
            rejects.sort()
            atomic_write_text(rej_file, "".join(
                json.dumps({"index": i, "file": f, "row_in_file": r, "reason": why, "detail": d}, ensure_ascii=False)
                + "\n" for i, f, r, why, d in rejects))
        elif os.path.exists(rej_file):
            os.remove(rej_file)  # a stale list from an earlier run would mislead
        meta = {
            "format_version": META_VERSION,
            "source": {"input": cfg.input, "files": [str(p) for p in paths], "input_format": cfg.input_format,
                       "handler": cfg.handler, "map_keys": dict(handler.map_keys), "max_rows": cfg.max_rows},
            "template": template.to_dict(),
            "tokenizer": {"path": tok_path, "class": type(tok).__name__, "vocab_size": len(tok),
                          "fingerprint": vocab_fingerprint(tok.get_vocab()),
                          "eos_token": tok.eos_token, "pad_token": tok.pad_token,
                          "special_tokens": {t: tok.convert_tokens_to_ids(t) for t in special_texts}},
            "counts": {"rows_read": rows_read, "rows_written": writer.count, "rows_rejected": len(rejects),
                       "reject_fraction": frac, "prompt_tokens": prompt_tokens, "max_prompt_tokens": max_tokens},
            "rejects_by_reason": dict(by_reason),
            "rejects_file": rej_file if rejects else None,
            "max_prompt_length": cfg.max_prompt_length,
            "max_reject_fraction": cfg.max_reject_fraction,
            "config": dataclasses.asdict(cfg),
            "config_hash": config_hash(cfg, template.to_dict()),
            "files": {},
            "label_encoding": "utf-8 bytes (uint8)",
            "prompt_dtype": "int32",
            "elapsed_s": elapsed,
            "rows_per_s": rows_read / elapsed if elapsed > 0 else 0.0,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": _platform.python_version(),
        }
        if writer.count == 0:
            raise PreprocessError(f"no row survived preprocessing; nothing written.\n{_summary_text(meta)}")
        if frac > cfg.max_reject_fraction:
            raise PreprocessError(
                f"{len(rejects)} of {rows_read} rows rejected ({frac:.2%}) > max_reject_fraction="
                f"{cfg.max_reject_fraction}; nothing published. Fix the data/map_keys or raise "
                f"max_reject_fraction.\n{_summary_text(meta)}"
            )
        meta["files"] = writer.publish()
        published = True
        meta["files"]["meta"] = meta_path(prefix)
        atomic_write_text(meta_path(prefix), json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        log("[preprocess] done\n" + _summary_text(meta))
        return meta
    finally:  # clean-up must not replace the error that brought us here
        if spec_path:
            remove_quietly([spec_path])
        if not published and writer is not None:
            writer.discard()
