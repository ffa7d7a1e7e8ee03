"""GPU tests: collected everywhere, run only where a CUDA device answers.

Tests marked ``gpu`` are skipped with the reason (no cuda-python, no driver, no device) on
CPU-only machines, so ``pytest tests/gpu`` stays green in CI and does real work on the GPU
host (tools/gpu/run_gpu_suite.sh).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference.gpu.cuda import cuda_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ok, reason = cuda_available()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"no usable CUDA GPU: {reason}")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def cuda() -> Iterator[tuple]:
    """(device, stream, pool, registry) for kernel-level tests; freed at module end."""
    from inference.gpu.cuda import BufferPool, Device, Stream
    from inference.gpu.host_register import HostRegistry

    device = Device(0)
    stream = Stream()
    pool = BufferPool()
    registry = HostRegistry()
    yield device, stream, pool, registry
    stream.synchronize()
    registry.close()
    pool.close()
    stream.close()
