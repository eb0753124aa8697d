#!/usr/bin/env python3
"""Preprocessor throughput vs the tokenizer alone, measured in the same run.

    python benchmarks/preprocess.py [--rows 40000] [--workers 2] [--input PARQUET] [--tokenizer DIR]

Builds a parquet of ``--rows`` rows by repeating the DeepScaleR sample, then times
  1. the whole pipeline (read, handler, template, tokenise, round-trip check, indexed write,
     metadata; start-up of tokenizer and workers included) with ``--workers`` processes, and
  2. the fast tokenizer alone batch-encoding the same rendered texts (Rust encode_batch on
     all cores, plus the transformers ``tokenizer(texts)`` call for reference),
and prints rows/s for each and the ratio pipeline / tokenizer-alone (target >= 0.7).

Python's one-time ``import transformers`` (which pulls in torch: ~2 s on 2 cores) is timed on
its own first: the tokenizer-alone baseline needs it too and does not count it. The pipeline
still counts everything it does itself (tokenizer load, worker start-up, writes). The ratio with
that import added to the pipeline is printed as well.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--input", default=str(ROOT.parent / "shared/data/math/deepscaler_sample2000_lime-nlp.parquet"))
    ap.add_argument("--tokenizer", default=str(ROOT / "tests/fixtures/qwen2_tokenizer"))
    ap.add_argument("--template", default="qwen_r1")
    args = ap.parse_args()
    if not Path(args.input).exists():
        alt = Path("/work/shared/data/math/deepscaler_sample2000_lime-nlp.parquet")
        if alt.exists():
            args.input = str(alt)
        else:
            sys.exit(f"--input {args.input} not found; pass the DeepScaleR sample parquet")

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mindspeed_rl.data.handlers import get_handler
    from mindspeed_rl.data.preprocess import PreprocessConfig, load_tokenizer, preprocess
    from mindspeed_rl.data.templates import load_template

    t0 = time.perf_counter()
    from transformers import AutoTokenizer  # noqa: F401  (module import only; no tokenizer loaded)

    t_import = time.perf_counter() - t0
    base = pq.read_table(args.input)
    reps = -(-args.rows // base.num_rows)
    table = pa.concat_tables([base] * reps).slice(0, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "bench.parquet")
        pq.write_table(table, data)

        # pipeline, end to end
        cfg = PreprocessConfig(input=data, tokenizer_name_or_path=args.tokenizer, template=args.template,
                               output_prefix=os.path.join(tmp, "out/bench"), workers=args.workers, progress=False)
        t0 = time.perf_counter()
        meta = preprocess(cfg, log=lambda *_: None)
        t_pipe = time.perf_counter() - t0
        assert meta["counts"]["rows_written"] == args.rows, meta["counts"]
        # same pipeline on the first 5% of the rows: separates fixed start-up from per-row cost
        small_n = max(1, args.rows // 20)
        small = os.path.join(tmp, "small.parquet")
        pq.write_table(table.slice(0, small_n), small)
        cfg_small = PreprocessConfig(**{**cfg.__dict__, "input": small, "output_prefix": os.path.join(tmp, "out/small")})
        t0 = time.perf_counter()
        preprocess(cfg_small, log=lambda *_: None)
        t_small = time.perf_counter() - t0

        # tokenizer alone on the same rendered texts (rendering not timed)
        tok = load_tokenizer(args.tokenizer)
        template, handler = load_template(args.template), get_handler("chat")
        texts = [template.render(handler(r).messages) for r in table.to_pylist()]
        backend = tok.backend_tokenizer
        t0 = time.perf_counter()
        enc = backend.encode_batch(texts, add_special_tokens=False)
        t_tok = time.perf_counter() - t0
        t0 = time.perf_counter()
        tok(texts, add_special_tokens=False)
        t_hf = time.perf_counter() - t0
    n_tok = sum(len(e.ids) for e in enc)
    print(f"rows: {args.rows}  prompt tokens: {n_tok}  cpu cores: {os.cpu_count()}")
    print(f"pipeline ({args.workers} workers, end to end): {args.rows / t_pipe:10.0f} rows/s  ({t_pipe:.2f}s)")
    print(f"tokenizer alone (Rust encode_batch):        {args.rows / t_tok:10.0f} rows/s  ({t_tok:.2f}s)")
    print(f"tokenizer alone (transformers tok(texts)):  {args.rows / t_hf:10.0f} rows/s  ({t_hf:.2f}s)")
    steady = (args.rows - small_n) / max(t_pipe - t_small, 1e-9)
    print(f"pipeline start-up (tokenizer load, worker spawn) ~{t_small - small_n / steady:.2f}s; "
          f"steady state {steady:.0f} rows/s (ratio {steady * t_tok / args.rows:.2f} vs encode_batch)")
    print(f"ratio pipeline / tokenizer alone (encode_batch): {t_tok / t_pipe:.2f}  (target >= 0.70)")
    print(f"ratio pipeline / tokenizer alone (tok(texts)):   {t_hf / t_pipe:.2f}")
    print(f"python `import transformers` (once per process, not in either figure above): {t_import:.2f}s; "
          f"pipeline with it: {args.rows / (t_pipe + t_import):.0f} rows/s, ratio {t_tok / (t_pipe + t_import):.2f}")


if __name__ == "__main__":
    main()
