#!/usr/bin/env bash
# Mini-R1: GRPO on Countdown for Qwen2.5-3B-Instruct on 1 node x 4 NPUs (or GPUs),
# configs/grpo_countdown_qwen25_3b.yaml. Prepare first: weights converted with
# `python3 tools/convert/convert_ckpt.py hf2mcore --load-dir ./model_from_hf/Qwen2.5-3B-Instruct
#  --save-dir ./model_weights/qwen25_3b_tp2pp1 --tp 2 --pp 1`, data with
# `python3 tools/data/make_countdown.py --out-dir data/countdown` and
# `bash examples/data/preprocess_data.sh countdown tokenizer_name_or_path=./model_from_hf/Qwen2.5-3B-Instruct`.
#
#   bash examples/grpo/grpo_countdown_qwen25_3b.sh [key=value overrides ...]
export NNODES=${NNODES:-1}
export DEVICE=${DEVICE:-NPU}                 # NPU (Ascend, torch_npu + MindSpeed) or GPU (CUDA + vLLM)
export DEVICES_PER_NODE=${NPUS_PER_NODE:-${GPUS_PER_NODE:-4}}
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
export CONFIG_NAME=grpo_countdown_qwen25_3b
export HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-1800}
export CUDA_DEVICE_MAX_CONNECTIONS=1
mkdir -p "$(dirname "$0")/../../logs"
exec bash "$(dirname "$0")/ray_cluster.sh" "$@"
