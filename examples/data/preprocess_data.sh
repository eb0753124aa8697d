#!/usr/bin/env bash
# Preprocess a dataset config from configs/datasets/ into a Megatron indexed dataset.
#
#   bash examples/data/preprocess_data.sh deepscaler [key=value ...]
#
# On a cluster, point the config at your copies (or pass input=/tokenizer_name_or_path=):
#   DATA_DIR=/mnt/data bash examples/data/preprocess_data.sh deepscaler workers=16
#   bash examples/data/preprocess_data.sh deepscaler input=/data/deepscaler.json \
#       map_keys.prompt=problem map_keys.response=answer tokenizer_name_or_path=/models/Qwen2.5-32B
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NAME="${1:-deepscaler}"
shift || true
if [[ -n "${DATA_DIR:-}" ]]; then
  export MINDSPEED_RL_DATA_DIR="$DATA_DIR"
fi
exec python3 "$ROOT/cli/preprocess_data.py" --config-name "$NAME" "$@"
