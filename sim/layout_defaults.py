"""DeepSeek-V3's training layout and batch (REFERENCE.md sections 1-2): the defaults of scenarios
(:mod:`sim.config`), of the training layout (:mod:`sim.step.layout`) and of commands; the one home
of these figures (tests/unit/test_constants.py). Plain numbers, so the scenario schema takes them
without importing the training code."""

from __future__ import annotations

DEFAULT_GPUS = 2048  # H800s in the job
DEFAULT_PP = 16  # pipeline stages (DualPipe: 16 ranks)
DEFAULT_EP = 64  # expert-parallel group: 8 nodes of 8 GPUs
DEFAULT_GLOBAL_BATCH = 15360  # sequences per step after DeepSeek-V3's batch ramp (REFERENCE.md section 1)
