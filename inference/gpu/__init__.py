"""The GPU path (cuda-python): CUDA plumbing, kernels, the fused detection pipeline and the
ONNX Runtime CUDA engine. Imported only by ``open_engine`` for CUDA devices."""
