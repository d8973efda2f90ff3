"""The machine's matmul rate in float32 and bfloat16: the roofline every other figure is a share of."""

from __future__ import annotations

import torch

from common import Timer, write_result


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    """Best-of-`repeats` GFLOP/s of an n x n x n matrix product."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up (oneDNN picks its kernel)
    best = float("inf")
    for _ in range(repeats):
        with Timer() as t:
            a @ b
        best = min(best, t.seconds)
    return 2 * n**3 / best / 1e9


if __name__ == "__main__":
    write_result("roofline", {
        "threads": torch.get_num_threads(),
        "fp32_gflops": round(matmul_gflops(torch.float32), 1),
        "bf16_gflops": round(matmul_gflops(torch.bfloat16), 1),
    })
