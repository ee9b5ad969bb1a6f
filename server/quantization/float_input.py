"""Keep one layer's activation input in float inside a static QDQ model (the tuner's "head input" move).

The FP32 output head protects the score's resolution, but in plain QDQ its *input* is still 8-bit: the last
hidden layer's output goes through QuantizeLinear -> DequantizeLinear, and 128 activations on a 256-level
grid collapse many distinct scores into ties. Removing that pair lets the last INT8 layer output float.

The Relu the quantizer folded into that Q pair is restored as `Max(x, 0)`, not as a `Relu`: ONNX Runtime's
QDQ selector reads a Relu right after a Gemm as a clip made redundant by a following QuantizeLinear and
gives up on the whole group when none follows, so the layer would run as DequantizeLinear + FP32 Gemm.
With `Max` the group DQ -> Gemm (no Q) still becomes one QGemm with float output: the integer kernel runs,
and only the head's input is float.
"""

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

ZERO_NAME = "float_input_zero"


def keep_input_float(model: onnx.ModelProto, fp32_model: onnx.ModelProto, layer: str) -> bool:
    """Remove the Q/DQ pairs (and make any Relu a Max) between `layer`'s activation input and the node
    producing it. `fp32_model` is the pre-processed FP32 graph, used to find a Relu the quantizer folded.
    Returns False (model unchanged) if `layer`'s input is not quantized.
    """
    graph = model.graph
    nodes = list(graph.node)
    target = next((n for n in nodes if n.name == layer), None)
    if target is None:
        raise ValueError(f"no node named {layer!r} in the quantized model")
    fp32_producer = {out: n.op_type for n in fp32_model.graph.node for out in n.output}
    producer = {out: n for n in nodes for out in n.output}
    consumers: dict[str, int] = {}
    for n in nodes:
        for name in n.input:
            consumers[name] = consumers.get(name, 0) + 1
    removed: list[onnx.NodeProto] = []
    added: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []  # (new node, insert before this node)
    consumer, index, uses_zero = target, 0, False
    while True:
        tensor = consumer.input[index]
        node = producer.get(tensor)
        if node is None:
            break
        source = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is not None and source.op_type == "QuantizeLinear":
            float_tensor = source.input[0]
            consumer.input[index] = float_tensor
            if consumers[tensor] == 1:
                removed.append(node)
                if consumers[source.output[0]] == 1:
                    removed.append(source)
            before = producer.get(float_tensor)
            if fp32_producer.get(float_tensor) == "Relu" and before is not None and before.op_type != "Relu":
                # The quantizer dropped the Relu (the Q's zero point clipped instead): put it back as Max.
                pre_relu = float_tensor + "_before_relu"
                before.output[list(before.output).index(float_tensor)] = pre_relu
                relu = helper.make_node("Max", [pre_relu, ZERO_NAME], [float_tensor], name=f"{pre_relu}_max0")
                added.append((relu, consumer))
                uses_zero = True
            break
        if node.op_type == "Relu":
            node.op_type = "Max"
            node.input.append(ZERO_NAME)
            consumer, index, uses_zero = node, 0, True
            continue
        break
    if not removed:
        return False
    kept = [n for n in nodes if all(n is not r for r in removed)]
    for new, before_node in added:
        kept.insert(kept.index(before_node), new)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for n in kept for name in n.input}
    orphans = {name for n in removed for name in n.input} - used  # the removed pairs' scales, zero points
    for init in [i for i in graph.initializer if i.name in orphans]:
        graph.initializer.remove(init)
    if uses_zero and ZERO_NAME not in {init.name for init in graph.initializer}:
        graph.initializer.append(onnx.numpy_helper.from_array(np.array(0.0, np.float32), ZERO_NAME))
    return True
