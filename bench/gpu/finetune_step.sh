#!/usr/bin/env bash
# One short check for a lent GPU (docs/finetuning.md): the real SAM3 architecture at 1008 px, batch 1,
# bf16 autocast, activation checkpointing, STEPS training steps each for full fine-tuning, LoRA and
# LoRA + text cache on the CASS task; prints peak memory (torch.cuda.max_memory_allocated) and seconds
# per step. Random weights unless SAM3_CHECKPOINT points at sam3.pt (memory and speed do not depend on
# the weights). Targets (issue 15): LoRA + cache <= 22 GB peak and <= 0.5 s/step on an H100-class GPU.
#   bash bench/gpu/finetune_step.sh            # STEPS=10 by default, ~3-5 minutes
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STEPS="${STEPS:-10}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python bench/bench_finetune_memory.py --model sam3 --device cuda --steps "$STEPS" --resolution 1008 \
  ${SAM3_CHECKPOINT:+--checkpoint "$SAM3_CHECKPOINT"} 2>&1 | grep -v -i "warning"
