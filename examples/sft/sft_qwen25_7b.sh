#!/usr/bin/env bash
# SFT of Qwen2.5-7B (configs/sft/sft_qwen25_7b.yaml) with torchrun on 1 node x 8 devices (NPU or GPU).
# Multi-node: run the same script on every node with NNODES, NODE_RANK and MASTER_ADDR set.
#
#   MODEL=/models/Qwen2.5-7B-Instruct DATA=traces.jsonl bash examples/sft/sft_qwen25_7b.sh [key=value ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
DEVICES_PER_NODE=${NPUS_PER_NODE:-${GPUS_PER_NODE:-8}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
export CUDA_DEVICE_MAX_CONNECTIONS=1 HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-1800} TOKENIZERS_PARALLELISM=false
args=()
[ -n "${MODEL:-}" ] && args+=("model.load=$MODEL")
[ -n "${DATA:-}" ] && args+=("data.train_path=$DATA")
exec torchrun --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$DEVICES_PER_NODE" \
  --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \
  cli/train_sft.py --config-name sft_qwen25_7b \
  "train.data_parallel_size=$((NNODES * DEVICES_PER_NODE / 4))" "${args[@]}" "$@"
