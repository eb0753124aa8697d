#!/usr/bin/env python3
"""Score a JSONL file of responses with the rule rewards used in training.

    python cli/score.py INPUT.jsonl --response-field response --gold-field answer \
        --reward acc --reward strict_format:0.5 --output OUTPUT.jsonl

Writes every input row with a ``reward`` field (the weighted total) and one ``reward_<name>``
field per function, then prints accuracy, timeouts, extraction failures and throughput.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="JSONL file, one object per line")
    p.add_argument("--response-field", required=True, help="field holding the model response")
    p.add_argument("--gold-field", required=True, help="field holding the gold answer (or a full solution)")
    p.add_argument("--reward", action="append", default=None, metavar="NAME[:WEIGHT]",
                   help="reward function (repeatable), e.g. acc, strict_format:0.5, pkg.mod:fn. Default: acc")
    p.add_argument("--output", required=True, help="output JSONL (written atomically)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (0: in-process, no timeout)")
    p.add_argument("--timeout", type=float, default=10.0, help="hard per-sample timeout in seconds")
    p.add_argument("--timeout-score", type=float, default=0.0, help="score of a sample that timed out")
    p.add_argument("--extra-fields", nargs="*", default=(),
                   help="row fields passed to the functions as extra (e.g. target numbers response_length)")
    g = p.add_argument_group("answer extraction")
    g.add_argument("--fallback", choices=("none", "number", "math"), default="math",
                   help="when no box/tag/phrase is found: last math or number (math), last number, or nothing")
    g.add_argument("--no-final-number-fallback", dest="fallback", action="store_const", const="none",
                   help="same as --fallback none")
    g.add_argument("--stop-word", action="append", default=[], help="cut responses at this string (repeatable)")
    g.add_argument("--no-answer-tag", action="store_true", help="ignore <answer>...</answer>")
    g.add_argument("--no-phrases", action="store_true", help="ignore 'the answer is' / 'Answer:'")
    g.add_argument("--no-bare-answer", action="store_true", help="do not take a short bare response as the answer")
    return p


def _read_rows(path: str) -> list[dict]:
    rows = []
    from mindspeed_rl.utils.fs import FileFormatError, decode_utf8_line

    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = decode_utf8_line(raw, path, lineno)
            except FileFormatError as exc:
                raise SystemExit(str(exc)) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove the line")
            if not isinstance(row, dict):
                raise SystemExit(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    if not rows:
        raise SystemExit(f"{path} is empty (no rows); nothing to score")
    return rows


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from mindspeed_rl.rewards import parse_weighted_names

    if args.workers < 0:
        raise SystemExit(f"--workers {args.workers}: must be >= 0 (0 scores in-process, without the timeout)")
    if not args.timeout > 0:
        raise SystemExit(f"--timeout {args.timeout}: must be > 0 seconds")
    try:
        names, weights = parse_weighted_names(args.reward or ["acc"])
    except ValueError as exc:
        raise SystemExit(f"--reward: {exc}")
    out = Path(args.output)
    tmp = _open_output(out)  # an unwritable output is found before any work, not after it
    try:
        return _score(args, names, weights, out, tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open_output(out: Path) -> str:
    """Create the temp file the output is written through, with normal permissions."""
    if out.is_dir():
        raise SystemExit(f"--output {out}: is a directory; give a file path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise SystemExit(f"--output {out}: cannot write there ({exc.strerror}); choose a writable path")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    return tmp


def _score(args, names, weights, out: Path, tmp: str) -> int:
    from mindspeed_rl.rewards import ExtractionConfig, RewardScorer

    rows = _read_rows(args.input)
    for lineno, row in rows:
        for field in (args.response_field, args.gold_field):
            if field not in row:
                raise SystemExit(f"{args.input}:{lineno}: no field {field!r} (fields: {sorted(row)}); "
                                 "set --response-field/--gold-field")
    responses = [row[args.response_field] for _, row in rows]
    golds = [row[args.gold_field] for _, row in rows]
    extra = [{k: row[k] for k in args.extra_fields if k in row} for _, row in rows] if args.extra_fields else None
    extraction = ExtractionConfig(stop_words=tuple(args.stop_word), fallback=args.fallback,
                                  answer_tag=not args.no_answer_tag, answer_phrases=not args.no_phrases,
                                  bare_answer=not args.no_bare_answer)
    with RewardScorer(names, weights, num_workers=args.workers, timeout_s=args.timeout,
                      timeout_score=args.timeout_score, extraction=extraction) as scorer:
        scorer.wait_ready()
        totals, per_fn, metrics = scorer.score(responses, golds, extra)

    with open(tmp, "w", encoding="utf-8") as f:
        for i, (_, row) in enumerate(rows):
            row = dict(row)
            row["reward"] = totals[i]
            for name in names:
                row[f"reward_{name}"] = per_fn[name][i]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out)

    n = metrics["samples"]
    print(f"scored {n} rows from {args.input} -> {out}")
    for name in names:
        print(f"  {name}: mean {metrics[f'reward/{name}/mean']:.4f}")
    if "acc" in names:
        print(f"  accuracy: {sum(v > 0 for v in per_fn['acc'])}/{n} = {metrics['reward/acc/mean']:.4f}")
    print(f"  reward mean {metrics['reward/mean']:.4f}; timeouts {metrics['timeouts']}; "
          f"errors {metrics['errors']}; extraction failures {metrics['extraction_failures']}")
    print(f"  {metrics['samples_per_s']:.1f} samples/s ({metrics['seconds']:.2f} s, {args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
