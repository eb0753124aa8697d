#!/usr/bin/env bash
# Shared by the cluster launchers: bring up Ray on this node; node 0 waits for every device, runs
# cli/train_grpo.py and stops Ray when training ends, whether it succeeded or failed.
#
# Inputs (environment):
#   NNODES (1), DEVICES_PER_NODE (8), DEVICE (NPU|GPU|CPU), CONFIG_NAME, overrides in "$@"
#   MASTER_ADDR   node 0's address (127.0.0.1 for one node)
#   NODE_RANK     0 on the head; default: 0 when NNODES=1 or MASTER_ADDR is one of this host's
#                 addresses, else 1 (give it explicitly for several nodes on one host)
#   NODE_IP       this node's address for Ray (--node-ip-address); default: MASTER_ADDR on node 0,
#                 else the source address of the route to MASTER_ADDR
#   SOCKET_IFNAME interface for GLOO/NCCL/HCCL/TP_SOCKET_IFNAME; default: the one holding NODE_IP
#   RAY_PORT (6344), RAY_STOP=all|own (all: `ray stop --force` before and after, as on a dedicated
#                 node; own: only the Ray processes this script started, for shared machines)
#   JOIN_TIMEOUT  seconds a worker node waits for the head (600); WAIT_TIMEOUT for devices (1800)
#   RAY_START_ATTEMPTS  times `ray start` is tried on a node before giving up (3)
#   REJOIN_WINDOW seconds a worker node whose Ray ended waits for the head to come back (60)
# Ray's start-up limits are raised for busy nodes (each can be overridden by exporting it first):
#   RAY_worker_register_timeout_seconds (Ray: 60), RAY_health_check_timeout_ms / _period_ms /
#   _failure_threshold (Ray: 10 s / 3 s / 5), RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S (Ray: 30; 0: no
#   Serve traffic to drain, stop at once), RAY_gcs_server_port_wait_time_s (Ray: 30),
#   RAY_agent_register_timeout_ms. The 30 s `ray start` gives its raylet to register is fixed in
#   Ray 2.60's code (ray/_private/node.py); on a loaded node the raylet misses it while its Python
#   dashboard agent starts (raylet.out: "Timed out waiting for file .../metrics_agent_port_*"),
#   hence the retries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"  # before any python: the package is imported from this checkout
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

NNODES="${NNODES:-1}"
DEVICES_PER_NODE="${DEVICES_PER_NODE:-8}"
DEVICE="${DEVICE:-NPU}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
RAY_PORT="${RAY_PORT:-6344}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8260}"
RAY_STOP="${RAY_STOP:-all}"
JOIN_TIMEOUT="${JOIN_TIMEOUT:-600}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-1800}"

is_local_address() {
  local addr="$1"
  [[ "$addr" == "$(hostname)" ]] && return 0
  hostname -I 2>/dev/null | tr ' ' '\n' | grep -qx "$addr" && return 0
  return 1
}

if [[ -z "${NODE_RANK:-}" ]]; then
  if [[ "$NNODES" == 1 ]] || is_local_address "$MASTER_ADDR"; then
    NODE_RANK=0
  elif [[ "$MASTER_ADDR" == 127.* || "$MASTER_ADDR" == localhost ]]; then
    echo "MASTER_ADDR=$MASTER_ADDR is a loopback address but NNODES=$NNODES: set NODE_RANK on each node" >&2
    exit 2
  else
    NODE_RANK=1
  fi
fi

if [[ -z "${NODE_IP:-}" ]]; then
  if [[ "$MASTER_ADDR" == 127.* || "$MASTER_ADDR" == localhost ]]; then
    NODE_IP=""  # one host: Ray's own choice of address; the head is reached through loopback
  elif [[ "$NODE_RANK" == 0 ]]; then
    NODE_IP="$MASTER_ADDR"
  else
    NODE_IP="$(ip route get "$MASTER_ADDR" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p' | head -1)"
    NODE_IP="${NODE_IP:-$(hostname -I | awk '{print $1}')}"
  fi
fi
IP_ARGS=()
[[ -n "$NODE_IP" ]] && IP_ARGS=(--node-ip-address="$NODE_IP")
if [[ -z "${SOCKET_IFNAME:-}" && -n "$NODE_IP" ]] && command -v ip >/dev/null; then
  SOCKET_IFNAME="$(ip -o -4 addr show 2>/dev/null | awk -v ip="$NODE_IP" '{split($4, a, "/"); if (a[1] == ip) print $2}' | head -1)"
fi
if [[ -n "${SOCKET_IFNAME:-}" ]]; then
  # collectives bind to the interface Ray uses, not the first one the library finds
  export GLOO_SOCKET_IFNAME="${GLOO_SOCKET_IFNAME:-$SOCKET_IFNAME}" NCCL_SOCKET_IFNAME="${NCCL_SOCKET_IFNAME:-$SOCKET_IFNAME}"
  export HCCL_SOCKET_IFNAME="${HCCL_SOCKET_IFNAME:-$SOCKET_IFNAME}" TP_SOCKET_IFNAME="${TP_SOCKET_IFNAME:-$SOCKET_IFNAME}"
fi

case "$DEVICE" in
  NPU)
    RES_ARGS=(--resources="{\"NPU\": ${DEVICES_PER_NODE}}") ; export MINDSPEED_RL_PLATFORM=npu
    # MindSpeed-RL's runtime environment; every one can be overridden by exporting it first
    export PYTORCH_NPU_ALLOC_CONF="${PYTORCH_NPU_ALLOC_CONF:-expandable_segments:True}"
    export HCCL_CONNECT_TIMEOUT="${HCCL_CONNECT_TIMEOUT:-1800}" HCCL_EXEC_TIMEOUT="${HCCL_EXEC_TIMEOUT:-3600}"
    export HCCL_IF_BASE_PORT="${HCCL_IF_BASE_PORT:-48000}" HCCL_BUFFSIZE="${HCCL_BUFFSIZE:-256}"
    export TASK_QUEUE_ENABLE="${TASK_QUEUE_ENABLE:-2}" CPU_AFFINITY_CONF="${CPU_AFFINITY_CONF:-1}" ;;
  GPU) RES_ARGS=(--num-gpus="${DEVICES_PER_NODE}") ; export MINDSPEED_RL_PLATFORM=cuda ;;
  CPU) RES_ARGS=(--num-cpus="$((DEVICES_PER_NODE + 1))" --num-gpus=0) ; export MINDSPEED_RL_PLATFORM=cpu ;;
  *) echo "DEVICE must be NPU, GPU or CPU, got '$DEVICE'" >&2; exit 2 ;;
esac
export CUDA_DEVICE_MAX_CONNECTIONS="${CUDA_DEVICE_MAX_CONNECTIONS:-1}"
# Ray >= 2.5x turns on token authentication for `ray start` clusters; the driver and every node
# then need the same token. Off by default here (a private training network); to use it, export
# RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (the same value) on every node.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
# A worker process on a loaded node can take minutes to start; Ray's defaults fail it (and the actor) at 60 s
export RAY_worker_register_timeout_seconds="${RAY_worker_register_timeout_seconds:-600}"
# a raylet starved of CPU for a minute is not a dead node
export RAY_health_check_timeout_ms="${RAY_health_check_timeout_ms:-30000}"
export RAY_health_check_period_ms="${RAY_health_check_period_ms:-5000}"
export RAY_health_check_failure_threshold="${RAY_health_check_failure_threshold:-12}"
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}"
# the head's GCS port file (Ray: 30 s) and the raylet's wait for its agents' ports, where Ray honours it
export RAY_gcs_server_port_wait_time_s="${RAY_gcs_server_port_wait_time_s:-120}"
export RAY_agent_register_timeout_ms="${RAY_agent_register_timeout_ms:-120000}"
RAY_START_ATTEMPTS="${RAY_START_ATTEMPTS:-3}"
REJOIN_WINDOW="${REJOIN_WINDOW:-60}"
TOTAL=$((NNODES * DEVICES_PER_NODE))
HEAD="${MASTER_ADDR}:${RAY_PORT}"

RAY_PID=""
stop_ray() {
  # runs on every exit (success, failure, Ctrl-C): nothing of this node's Ray is left behind
  local code=$?
  if [[ -n "$RAY_PID" ]] && kill -0 "$RAY_PID" 2>/dev/null; then
    kill -TERM "$RAY_PID" 2>/dev/null || true
    wait "$RAY_PID" 2>/dev/null || true
  fi
  if [[ "$RAY_STOP" == all ]]; then ray stop --force >/dev/null 2>&1 || true; fi
  echo "ray_cluster.sh: node ${NODE_RANK} stopped Ray (exit ${code})"
  exit "$code"
}
trap stop_ray EXIT
trap 'exit 130' INT TERM

wait_for_port() {  # host port timeout_s
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    (( SECONDS < deadline )) || { echo "nothing listening at $1:$2 after $3s" >&2; return 1; }
    sleep 2
  done
}

if [[ "$RAY_STOP" == all ]]; then ray stop --force >/dev/null 2>&1 || true; fi
if [[ "$NODE_RANK" == 0 ]]; then
  WAIT_COUNT=$TOTAL; [[ "$DEVICE" == CPU ]] && WAIT_COUNT=$((NNODES * (DEVICES_PER_NODE + 1)))
  # `ray start` gives its raylet 30 s to register (fixed in Ray); on a busy head it can give up: start again
  for attempt in $(seq 1 "$RAY_START_ATTEMPTS"); do
    ray start --head "${IP_ARGS[@]}" --port="$RAY_PORT" --include-dashboard=false \
      --dashboard-port="$DASHBOARD_PORT" "${RES_ARGS[@]}" --block &
    RAY_PID=$!
    wait_for_port "$MASTER_ADDR" "$RAY_PORT" 120 || true
    echo "waiting for ${TOTAL} ${DEVICE}s across ${NNODES} node(s)..."
    RAY_ADDRESS="$HEAD" timeout "$WAIT_TIMEOUT" python3 - "$DEVICE" "$WAIT_COUNT" "$NNODES" "$WAIT_TIMEOUT" <<'PY' &
import sys, ray
from mindspeed_rl.workers.placement import wait_for_resources
ray.init(logging_level="ERROR")
wait_for_resources(sys.argv[1], float(sys.argv[2]), timeout_s=float(sys.argv[4]), poll_s=1.0)
print(f"cluster ready: {ray.cluster_resources().get(sys.argv[1], 0):g} {sys.argv[1]}s on {len(ray.nodes())} node(s)")
PY
    WAITER=$!
    # a head whose `ray start` gave up is retried at once, not after the waiter's timeout
    while kill -0 "$WAITER" 2>/dev/null && kill -0 "$RAY_PID" 2>/dev/null; do sleep 1; done
    if kill -0 "$RAY_PID" 2>/dev/null; then
      wait "$WAITER" && break
      echo "the cluster did not reach ${TOTAL} ${DEVICE}s within WAIT_TIMEOUT=${WAIT_TIMEOUT}s" >&2; exit 1
    fi
    kill -TERM "$WAITER" 2>/dev/null || true; wait "$WAITER" 2>/dev/null || true
    wait "$RAY_PID" 2>/dev/null || true; RAY_PID=""
    (( attempt < RAY_START_ATTEMPTS )) || { echo "Ray head did not come up after ${attempt} attempt(s)" >&2; exit 1; }
    echo "Ray head failed to start (attempt ${attempt}); starting it again"
    sleep $((5 * attempt))  # let a busy node settle
  done
  mkdir -p logs
  set +e  # the exit status is the trainer's (PIPESTATUS), and Ray is stopped by the trap either way
  RAY_ADDRESS="$HEAD" python3 cli/train_grpo.py --config-name "$CONFIG_NAME" \
    "rl_config.actor_resource.num_devices=${TOTAL}" "$@" 2>&1 | tee "logs/${CONFIG_NAME}_$(date +%Y%m%d_%H%M%S).log"
  status=${PIPESTATUS[0]}
  set -e
  exit "$status"
else
  # join once the head is up, and stay until the head goes away (training over). When this node's
  # Ray ends and the head is back (or still there) within REJOIN_WINDOW seconds, this node gave up
  # starting (busy node) or the head was restarted after a failed start: join again.
  for attempt in $(seq 1 "$RAY_START_ATTEMPTS"); do
    wait_for_port "$MASTER_ADDR" "$RAY_PORT" "$JOIN_TIMEOUT"
    ray start --address="$HEAD" "${IP_ARGS[@]}" "${RES_ARGS[@]}" --block &
    RAY_PID=$!
    wait "$RAY_PID" || true
    RAY_PID=""
    wait_for_port "$MASTER_ADDR" "$RAY_PORT" "$REJOIN_WINDOW" 2>/dev/null || exit 0
    echo "Ray on node ${NODE_RANK} ended while the head is up (attempt ${attempt}); joining again"
  done
  echo "node ${NODE_RANK} could not stay in the cluster after ${RAY_START_ATTEMPTS} attempt(s)" >&2
  exit 1
fi
