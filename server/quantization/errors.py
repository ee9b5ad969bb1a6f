"""Errors of the quantization pipeline. Each names the file and the problem so the operator can fix it."""

from server.config.errors import DataFileError

__all__ = [
    "DataFileError",
    "ModelFileError",
    "ModelIntegrityError",
    "NoQuantizableOpsError",
    "QuantizationError",
]


class QuantizationError(Exception):
    """Base class: the pipeline could not prepare a model. Nothing was written to the cache."""


class ModelFileError(QuantizationError):
    """The FP32 ONNX file is missing, unreadable or not a valid ONNX model."""


class NoQuantizableOpsError(QuantizationError):
    """The model has no MatMul/Gemm/Conv with constant weights left to quantize."""


class ModelIntegrityError(ModelFileError):
    """The ONNX file is not the one its config's `integrity` section records (digest or holdout ROC-AUC)."""
