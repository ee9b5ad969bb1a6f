"""Startup quantization: calibrate, quantize to static INT8 QDQ, gate on financial metrics, tune, cache."""
