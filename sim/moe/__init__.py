"""MoE expert parallelism: gating, DeepSeek-V3 node-limited expert selection, load balancing,
dispatch/combine traffic with IB deduplication, and a DeepEP-style kernel model."""
