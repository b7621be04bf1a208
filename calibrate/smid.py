"""Which SMs a CUDA stream's kernels land on (``%smid``), to check that two green contexts are disjoint.

``torch.cuda.green_contexts.GreenContext.create(num_sms=N)`` does not document whether two contexts
created one after the other get disjoint SM sets; the interference benchmark needs to know. A Triton
kernel of many blocks records each block's SM id on the stream it is launched on. Needs Triton (on
GPU machines it ships with torch); :func:`sm_ids` raises where it is missing.
"""

from __future__ import annotations

from typing import Any

import torch

_KERNEL: list[Any] = []


def _kernel() -> Any:
    if not _KERNEL:
        import triton
        import triton.language as tl

        @triton.jit
        def smid(out_ptr):  # type: ignore[no-untyped-def,unused-ignore]
            pid = tl.program_id(0)
            dummy = tl.load(out_ptr + pid)
            sm = tl.inline_asm_elementwise("mov.u32 $0, %smid;", "=r,r", [dummy], dtype=tl.int32, is_pure=False, pack=1)
            tl.store(out_ptr + pid, sm)

        _KERNEL.append(smid)
    return _KERNEL[0]


def sm_ids(stream: torch.cuda.Stream, blocks: int = 8192) -> set[int]:
    """SM ids used by ``blocks`` one-thread-group blocks launched on ``stream``."""
    kernel = _kernel()
    out = torch.zeros(blocks, dtype=torch.int32, device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        kernel[(blocks,)](out)
    torch.cuda.synchronize()
    return {int(x) for x in out.unique().tolist()}
