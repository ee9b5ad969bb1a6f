"""FP32 vs INT8 side by side for the bundled models: `python -m benchmarks.quantization`."""
