#!/usr/bin/env bash
# GPU acceptance of the engine on one CUDA device (<= 8 min on one H200; torch 2.11+cu130, Python 3.12):
#   bash tests/accelerator/run.sh [results.json]
# Writes JSON with one entry per check (see tests/accelerator/acceptance.py); exit 0 when all pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-accelerator_results.json}"
export TOKENIZERS_PARALLELISM=false
timeout 480 python3 tests/accelerator/acceptance.py --platform cuda --out "$OUT"
