"""Types (and, for element-wise ops, shapes) of ai.onnx.ml outputs that ONNX's shape inference leaves blank.

ONNX's shape inference leaves the outputs of skl2onnx's Scaler, Normalizer, OneHotEncoder and
FeatureVectorizer untyped; ORT's quantizer silently skips an untyped tensor ("failed to infer the type of
tensor") and its optimizer cannot fuse MatMul + Add into Gemm without a known 2-D shape.
"""

import onnx

# Element-wise ml ops: their output has their input's shape.
SAME_SHAPE_ML_OPS = {"Scaler", "Normalizer", "Imputer", "Binarizer"}
FLOAT_OUTPUT_ML_OPS = SAME_SHAPE_ML_OPS | {"FeatureVectorizer", "OneHotEncoder"}


def type_ml_outputs(model: onnx.ModelProto) -> bool:
    """Run shape inference on `model` in place and declare the type (and shape where known) of untyped
    ai.onnx.ml outputs; True if any was added."""
    model.CopyFrom(onnx.shape_inference.infer_shapes(model))
    graph = model.graph
    known = {v.name: v for v in (*graph.value_info, *graph.output, *graph.input)}
    added = False
    for node in graph.node:
        if node.domain != "ai.onnx.ml" or node.op_type not in FLOAT_OUTPUT_ML_OPS:
            continue
        output = node.output[0]
        if output in known:
            continue
        source = known.get(node.input[0])
        info = onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)
        shaped = source is not None and source.type.tensor_type.HasField("shape")
        if node.op_type in SAME_SHAPE_ML_OPS and shaped:
            info.type.tensor_type.shape.CopyFrom(source.type.tensor_type.shape)
        graph.value_info.append(info)
        known[output] = info
        added = True
    if added:
        model.CopyFrom(onnx.shape_inference.infer_shapes(model))
    return added
