"""Point-to-point and all-to-all through torch.distributed (NCCL on GPUs, gloo on CPU).

Local runs spawn ``world`` processes on this machine (:func:`run_local`). For several GPUs or nodes,
launch this module with torchrun, which sets RANK / WORLD_SIZE / MASTER_ADDR:

    torchrun --nproc_per_node 8 -m calibrate.comm --out comm.json            # one node, NCCL
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_endpoint HOST:29500 -m calibrate.comm --out comm.json

Rank 0 writes the samples (JSON list) that ``twin calibrate run --comm-samples comm.json`` merges.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist

SIZES = (1 << 12, 1 << 16, 1 << 20)


def _time(fn, device: str, warmup: int = 2, repeats: int = 5, burst: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Median seconds per call: after a barrier, ``burst`` back-to-back calls, synchronised."""
    for _ in range(warmup):
        fn()
    results = []
    for _ in range(repeats):
        dist.barrier()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(burst):
            fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        results.append((time.perf_counter() - t0) / burst)
    return statistics.median(results)


def _init(rank: int | None, world: int | None, gpu: int | None) -> str:
    """Join the process group on GPU ``gpu`` (NCCL) or, when None, the CPU (gloo); returns the device."""
    if gpu is not None:
        device = torch.device("cuda", gpu)
        torch.cuda.set_device(device)  # NCCL communicators and barriers use the current device
        kwargs: dict[str, object] = {"backend": "nccl", "device_id": device}
    else:
        device, kwargs = torch.device("cpu"), {"backend": "gloo"}
    if rank is not None and world is not None:
        kwargs.update(rank=rank, world_size=world)
    dist.init_process_group(**kwargs)
    return str(device)


def measure(device: str, sizes: tuple[int, ...] = SIZES) -> list[dict[str, object]]:
    """Run on every rank of an initialised process group; returns rank 0's samples."""
    rank, world = dist.get_rank(), dist.get_world_size()
    samples: list[dict[str, object]] = []
    for nbytes in sizes:
        elems = max(world, nbytes // 4 // world * world)
        send = torch.randn(elems, device=device)
        recv = torch.empty_like(send)
        t = _time(lambda s=send, r=recv: dist.all_to_all_single(r, s), device)
        samples.append(
            {
                "op": "alltoall",
                "params": {"bytes": elems * 4, "world": world, "backend": dist.get_backend()},
                "time_s": t,
            }
        )
        if world >= 2:
            buf = torch.randn(max(1, nbytes // 4), device=device)

            def pingpong(b: torch.Tensor = buf) -> None:
                if rank == 0:
                    dist.send(b, 1)
                    dist.recv(b, 1)
                elif rank == 1:
                    dist.recv(b, 0)
                    dist.send(b, 0)

            t = _time(pingpong, device) / 2
            samples.append(
                {"op": "p2p", "params": {"bytes": buf.numel() * 4, "backend": dist.get_backend()}, "time_s": t}
            )
    return samples


def _worker(rank: int, world: int, port: int, out: str, sizes: tuple[int, ...]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    one_gpu_each = torch.cuda.is_available() and torch.cuda.device_count() >= world
    device = _init(rank, world, rank if one_gpu_each else None)
    try:
        samples = measure(device, sizes)
        if rank == 0:
            Path(out).write_text(json.dumps(samples))
    finally:
        dist.destroy_process_group()


def run_local(world: int, out: str, port: int = 29533, sizes: tuple[int, ...] = SIZES) -> list[dict[str, object]]:
    """Spawn ``world`` local processes and return rank 0's samples."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, port, out, sizes), nprocs=world, join=True)
    return list(json.loads(Path(out).read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="comm.json")
    a = ap.parse_args()
    local = int(os.environ.get("LOCAL_RANK", "0"))  # torchrun sets it, with RANK and WORLD_SIZE
    device = _init(None, None, local if torch.cuda.is_available() else None)
    try:
        samples = measure(device)
        if dist.get_rank() == 0:
            Path(a.out).write_text(json.dumps(samples))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
