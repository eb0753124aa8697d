#!/usr/bin/env bash
# DAPO (clip-higher, token-mean loss, no KL, dynamic sampling, overlong shaping) for Qwen2.5-32B
# on 16 nodes x 8 NPUs (or GPUs), configs/dapo_qwen25_32b.yaml. Run THE SAME script on every node:
# node 0 (the one at MASTER_ADDR) starts the Ray head, waits for all devices and trains; the others
# join. Prepare first: weights converted with examples/ckpt/qwen25_32b_hf2mcore.sh (actor TP8
# PP2), data with `bash examples/data/preprocess_data.sh deepscaler tokenizer_name_or_path=...`.
# Check the config without a cluster: python3 cli/train_grpo.py --config-name dapo_qwen25_32b --print-config
#
#   bash examples/dapo/dapo_trainer_qwen25_32b.sh [key=value overrides ...]
export NNODES=${NNODES:-16}
export DEVICE=${DEVICE:-NPU}                 # NPU (Ascend, torch_npu + MindSpeed) or GPU (CUDA + vLLM)
export DEVICES_PER_NODE=${NPUS_PER_NODE:-${GPUS_PER_NODE:-8}}
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} # node 0's address, reachable from every node
export CONFIG_NAME=dapo_qwen25_32b
export HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-1800}
export CUDA_DEVICE_MAX_CONNECTIONS=1
mkdir -p "$(dirname "$0")/../../logs"
exec bash "$(dirname "$0")/../grpo/ray_cluster.sh" "$@"
