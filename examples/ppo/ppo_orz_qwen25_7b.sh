#!/usr/bin/env bash
# PPO with a critic, Open-Reasoner-Zero's settings, for Qwen2.5-7B on 4 nodes x 8 NPUs (or GPUs):
# actor (+ vLLM replicas, + colocated reference) on 16 devices, critic on 16 of its own. Run THE SAME
# script on every node: node 0 (the one at MASTER_ADDR) starts the Ray head, waits for all devices
# and trains; the others join. Prepare first: weights converted with examples/ckpt/qwen25_7b_hf2mcore.sh
# (TP4 PP1, used by the actor, the reference and the critic's backbone), data with
# `bash examples/data/preprocess_data.sh deepscaler tokenizer_name_or_path=...`. Plan the memory
# without devices: python3 cli/train_grpo.py --config-name ppo_orz_qwen25_7b --dry-run
#
#   NNODES=4 MASTER_ADDR=10.0.0.1 bash examples/ppo/ppo_orz_qwen25_7b.sh [key=value overrides ...]
export NNODES=${NNODES:-4}
export DEVICE=${DEVICE:-NPU}                 # NPU (Ascend, torch_npu + MindSpeed) or GPU (CUDA + vLLM)
export DEVICES_PER_NODE=${NPUS_PER_NODE:-${GPUS_PER_NODE:-8}}
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} # node 0's address, reachable from every node
export CONFIG_NAME=ppo_orz_qwen25_7b
export HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-1800}
export CUDA_DEVICE_MAX_CONNECTIONS=1
mkdir -p "$(dirname "$0")/../../logs"
exec bash "$(dirname "$0")/../grpo/ray_cluster.sh" "$@"
