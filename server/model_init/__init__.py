"""`riskserve models init`: a model folder the server serves as it is, from an exported ONNX file and data.

Needs onnx, onnxruntime and pandas only (no exporter): the ONNX file is read as it was exported."""

from server.model_init.build import DEFAULT_ALERT_RATES, InitOptions, InitResult, init_model
from server.model_init.errors import ModelInitError

__all__ = ["DEFAULT_ALERT_RATES", "InitOptions", "InitResult", "ModelInitError", "init_model"]
