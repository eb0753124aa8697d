#!/usr/bin/env bash
# The Open-R1 pipeline on the tiny CPU demo, from one script: generate -> filter -> SFT -> GRPO, with
# held-out greedy pass@1 (the GRPO demo's 100 arithmetic test problems, cli/evaluate.py) before SFT,
# after SFT and after GRPO, and the seconds each stage took (work_dirs/r1_pipeline/pipeline.json).
#
#   bash examples/r1_pipeline_tiny_cpu.sh            # GRPO_ITERS=30 GRPO_LR=1e-4 PROBLEMS=512 by default
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
# Ray starts its workers at niceness 15: on a shared box other jobs would starve the GRPO stage
export RAY_worker_niceness=${RAY_worker_niceness:-0}
WORK=${WORK:-work_dirs/r1_pipeline}
GRPO_ITERS=${GRPO_ITERS:-30}
GRPO_LR=${GRPO_LR:-1e-4}   # after SFT the demo's 1e-3 undoes the SFT gain (0.82 -> ~0.5 in an earlier round)
mkdir -p "$WORK"
stamp() { date +%s.%N; }
pass1() {  # model dir, tag -> prints pass@1
  python3 cli/evaluate.py --config-name tiny_cpu --model "$1" --dataset work_dirs/tiny_cpu/data/test.jsonl \
    dataset.problem_key=problem dataset.answer_key=answer \
    --max-problems 100 --n 1 --temperature 0 --max-tokens 64 --batch-size 100 --output-dir "$WORK/eval_$2" \
    --overwrite chart=false > "$WORK/eval_$2.log" 2>&1
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics']['pass@1'])" "$WORK/eval_$2/report.json"
}
t0=$(stamp)
python3 tools/demo/prepare_tiny_cpu.py
t_prep=$(stamp)
before=$(pass1 work_dirs/tiny_cpu/hf_sft before_sft)
echo "pass@1 before SFT (the GRPO demo's warm start): $before"
t1=$(stamp)
WORK=$WORK bash examples/sft/sft_tiny_cpu.sh
t2=$(stamp)
after_sft=$(pass1 "$WORK/hf_sft" after_sft)
echo "pass@1 after SFT: $after_sft"
t3=$(stamp)
python3 tools/convert/convert_ckpt.py hf2mcore --load-dir "$WORK/hf_sft" --save-dir "$WORK/mcore_sft" --tp 1 --pp 1 --quiet --overwrite
python3 cli/train_grpo.py --config-name grpo_tiny_cpu "actor_config.load=$WORK/mcore_sft" "ref_config.load=$WORK/mcore_sft" \
  "actor_config.lr=$GRPO_LR" "megatron_training.train_iters=$GRPO_ITERS" "megatron_training.save=$WORK/grpo_ckpt" \
  "megatron_training.log_dir=$WORK/grpo_runs" megatron_training.save_interval=1000
t4=$(stamp)
after_grpo=$(pass1 "$WORK/grpo_ckpt" after_grpo)
echo "pass@1 after GRPO: $after_grpo"
python3 - "$WORK" "$before" "$after_sft" "$after_grpo" "$t0" "$t_prep" "$t1" "$t2" "$t3" "$t4" "$GRPO_ITERS" "$GRPO_LR" <<'PY'
import json, sys
work, before, sft, grpo, t0, tp, t1, t2, t3, t4, iters, lr = sys.argv[1:]
t0, tp, t1, t2, t3, t4 = map(float, (t0, tp, t1, t2, t3, t4))
summary = json.load(open(f"{work}/generated.jsonl.summary.json"))
out = {"pass@1": {"before_sft": float(before), "after_sft": float(sft), "after_grpo": float(grpo)},
       "seconds": {"prepare": tp - t0, "generate_and_sft": t2 - t1, "grpo": t4 - t3},
       "generated": summary["generated"], "kept": summary["kept"], "kept_fraction": summary["kept_fraction"],
       "grpo_iters": int(iters), "grpo_lr": float(lr)}
json.dump(out, open(f"{work}/pipeline.json", "w"), indent=1)
print(json.dumps(out, indent=1))
PY
