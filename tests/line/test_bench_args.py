"""``linecheck bench`` flags reach the engine options the contenders are opened with."""

from __future__ import annotations

import argparse

import pytest

from tools.bench.args import add_bench_arguments
from tools.bench.inputs import engine_options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser


def test_gpu_flags_become_engine_options() -> None:
    args = _parser().parse_args(["--backend", "onnxruntime-cuda", "--cameras", "8", "--fp16", "--cuda-wait", "block",
                                 "--cuda-option", "prefer_nhwc=0", "--no-whole-graph"])  # fmt: skip
    options = engine_options(args)
    assert (options.device, options.backend, options.max_batch, options.fp16) == ("cuda", "onnxruntime", 8, True)
    assert options.cuda_wait == "block"
    assert options.cuda_provider_options == {"prefer_nhwc": "0"}
    assert not options.whole_graph


def test_defaults_are_the_cpu_engine_with_cudas_own_wait() -> None:
    options = engine_options(_parser().parse_args([]))
    assert (options.device, options.cuda_wait, options.max_batch) == ("cpu", "auto", 1)
    assert options.intra_op_threads == 0  # ONNX Runtime's own choice: one thread per core


def test_intra_op_threads_reach_the_cpu_engine() -> None:
    options = engine_options(_parser().parse_args(["--intra-op-threads", "8"]))
    assert (options.device, options.intra_op_threads) == ("cpu", 8)


def test_an_unknown_wait_mode_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--cuda-wait", "sleep"])
    assert "invalid choice: 'sleep'" in capsys.readouterr().err
