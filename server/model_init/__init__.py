"""`riskserve models init`: a model folder the server serves as it is, from an exported ONNX file and data.

Needs onnx, onnxruntime and pandas only (no exporter): the ONNX file is read as it was exported. The entry
point is `server.model_init.build.init_model`; this package imports nothing itself, so the server's own
use of `server.model_init.signature` (graph vocabularies, checked at every start) does not load the builder
and its scikit-learn metrics.
"""
