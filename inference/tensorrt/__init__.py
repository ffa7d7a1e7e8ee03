"""TensorRT 10 / TensorRT-RTX: the runtime engine and the engine builder with its cache."""
