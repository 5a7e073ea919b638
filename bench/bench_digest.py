"""Digest throughput: xxh3-128 of a large file against plain reading of the same file.

Both read in the same 1 MiB chunks, file in the page cache; medians of 5.

    python bench/bench_digest.py          # 512 MiB
    python bench/bench_digest.py 2048     # MiB
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from acpbuild.keys import file_digest


def plain_read(path: Path) -> int:
    total = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            total += len(block)
    return total


def median_seconds(fn: object, path: Path) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        fn(path)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            f.writelines(block for _ in range(mib))
        plain_read(path)  # warm the page cache
        read_s = median_seconds(plain_read, path)
        digest_s = median_seconds(file_digest, path)
    print(f"{'what':<22} {'seconds':>8} {'MiB/s':>8}")
    print(f"{'plain read (baseline)':<22} {read_s:>8.3f} {mib / read_s:>8.0f}")
    print(f"{'xxh3-128 digest':<22} {digest_s:>8.3f} {mib / digest_s:>8.0f}")
    print(f"digest costs {digest_s / read_s:.2f}x a plain read")


if __name__ == "__main__":
    main()
