"""The GPU layer's one error type, in a module of its own so that the cuda-python wrappers
(``inference.gpu.cuda``) and the GIL-holding enqueue calls (``inference.gpu.enqueue``) both
raise it without importing each other."""


class GpuError(RuntimeError):
    """A CUDA / NVRTC call failed; the message names the call and CUDA's error string."""
