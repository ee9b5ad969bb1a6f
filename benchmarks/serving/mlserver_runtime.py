"""A minimal MLServer custom runtime serving a riskserve ONNX model through the Open Inference Protocol.

This file is copied into the MLServer model folder by the benchmark and imported by MLServer in its own
venv: it must only depend on mlserver, numpy and onnxruntime. It uses the same latency-oriented session
options as riskserve so the comparison is about the serving stack, not ORT settings.
"""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRiskRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self._string_inputs = {i.name for i in self._session.get_inputs() if i.type == "tensor(string)"}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {}
        for request_input in payload.inputs:
            if request_input.name in self._string_inputs:
                values = StringCodec.decode_input(request_input)
                feeds[request_input.name] = np.array(values, dtype=object).reshape(-1, 1)
            else:
                feeds[request_input.name] = NumpyCodec.decode_input(request_input).astype(np.float32)
        probabilities = self._session.run(["probabilities"], feeds)[0]
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("probabilities", probabilities)],
        )
