#!/usr/bin/env bash
# Shared by the cluster launchers: bring up Ray on this node, and on node 0 wait for every device
# and run cli/train_grpo.py. Expects NNODES, DEVICES_PER_NODE, DEVICE (NPU|GPU), MASTER_ADDR,
# NODE_RANK (default: derived from this host's address), CONFIG_NAME and extra overrides in "$@".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RAY_PORT="${RAY_PORT:-6344}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8260}"

if [[ -z "${NODE_RANK:-}" ]]; then
  # node 0 is the one whose address is MASTER_ADDR
  if hostname -I 2>/dev/null | tr ' ' '\n' | grep -qx "$MASTER_ADDR" || [[ "$(hostname)" == "$MASTER_ADDR" ]]; then
    NODE_RANK=0
  else
    NODE_RANK=1
  fi
fi

case "$DEVICE" in
  NPU) RES_ARGS=(--resources="{\"NPU\": ${DEVICES_PER_NODE}}") ; export MINDSPEED_RL_PLATFORM=npu ;;
  GPU) RES_ARGS=(--num-gpus="${DEVICES_PER_NODE}") ; export MINDSPEED_RL_PLATFORM=cuda ;;
  *) echo "DEVICE must be NPU or GPU, got '$DEVICE'" >&2; exit 2 ;;
esac
TOTAL=$((NNODES * DEVICES_PER_NODE))

ray stop --force >/dev/null 2>&1 || true
if [[ "$NODE_RANK" == 0 ]]; then
  ray start --head --port="$RAY_PORT" --dashboard-host=0.0.0.0 --dashboard-port="$DASHBOARD_PORT" "${RES_ARGS[@]}"
  echo "waiting for ${TOTAL} ${DEVICE}s across ${NNODES} node(s)..."
  python3 - "$DEVICE" "$TOTAL" <<'PY'
import sys, ray
from mindspeed_rl.workers.placement import wait_for_resources
ray.init(address="auto", logging_level="ERROR")
wait_for_resources(sys.argv[1], float(sys.argv[2]), timeout_s=1800)
print(f"cluster ready: {ray.cluster_resources().get(sys.argv[1], 0):g} {sys.argv[1]}s")
PY
  cd "$ROOT"
  RAY_ADDRESS=auto python3 cli/train_grpo.py --config-name "$CONFIG_NAME" \
    "rl_config.actor_resource.num_devices=${TOTAL}" "$@" 2>&1 | tee "logs/${CONFIG_NAME}_$(date +%Y%m%d_%H%M%S).log"
  status=${PIPESTATUS[0]}
  ray stop --force
  exit "$status"
else
  # workers join and stay up until node 0 stops the cluster
  until ray start --address="${MASTER_ADDR}:${RAY_PORT}" "${RES_ARGS[@]}" --block; do
    echo "head not reachable at ${MASTER_ADDR}:${RAY_PORT}, retrying in 10s"; sleep 10
  done
fi
