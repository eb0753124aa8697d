#!/usr/bin/env bash
# SFT of Qwen2.5-32B (configs/sft/sft_qwen25_32b.yaml: TP8 x PP4) with torchrun on 4 nodes x 8 devices.
# Run the same script on every node with NODE_RANK (0..NNODES-1) and MASTER_ADDR (node 0) set.
#
#   NODE_RANK=0 MASTER_ADDR=10.0.0.1 MODEL=./model_weights/qwen25_32b_tp8_pp4 DATA=traces.jsonl \
#     bash examples/sft/sft_qwen25_32b.sh [key=value ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
NNODES=${NNODES:-4}
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
  cli/train_sft.py --config-name sft_qwen25_32b \
  "train.data_parallel_size=$((NNODES * DEVICES_PER_NODE / 32))" "${args[@]}" "$@"
