#!/usr/bin/env bash
# Qwen2.5-7B: trained Megatron actor (any TP/PP) -> Hugging Face safetensors for evaluation/release.
# config.json and tokenizer files come from the copy stored in the Megatron checkpoint
# (or from HF_CONFIG_DIR when set).
# Usage: MG_DIR=/ckpt/actor SAVE_DIR=/models/Qwen2.5-7B-grpo bash examples/ckpt/qwen25_7b_mcore2hf.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MG_DIR=${MG_DIR:-./ckpt/qwen25_7b_actor}
SAVE_DIR=${SAVE_DIR:-./model_to_hf/Qwen2.5-7B-grpo}
python tools/convert/convert_ckpt.py mcore2hf \
    --load-dir "$MG_DIR" --save-dir "$SAVE_DIR" \
    ${HF_CONFIG_DIR:+--hf-config-dir "$HF_CONFIG_DIR"} --dtype bf16 --max-shard-size 5GB "$@"
