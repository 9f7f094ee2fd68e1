"""Give a fully int8 .tflite float32 inputs and outputs: a QUANTIZE op in front, a DEQUANTIZE op behind.

litert_torch's static int8 conversion makes the graph's I/O int8; the gateway feeds float32 features.
"""

from __future__ import annotations

from typing import Any

import flatbuffers  # type: ignore[import-untyped]
from ai_edge_litert import schema_py_generated as schema

_OP_VERSION = 2  # QUANTIZE / DEQUANTIZE version 2 handle int8


def _opcode_index(model: Any, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = _OP_VERSION
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_twin(subgraph: Any, index: int, suffix: str) -> int:
    source = subgraph.tensors[index]
    twin = schema.TensorT()
    twin.shape = source.shape
    twin.shapeSignature = source.shapeSignature
    twin.type = schema.TensorType.FLOAT32
    twin.buffer = 0  # the empty sentinel buffer: computed at run time
    twin.name = (source.name or b"tensor") + suffix.encode()
    subgraph.tensors.append(twin)
    return len(subgraph.tensors) - 1


def _op(opcode: int, inputs: list[int], outputs: list[int]) -> Any:
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = inputs
    op.outputs = outputs
    return op


def with_float_io(model_bytes: bytes) -> bytes:
    """The same model with every int8 input / output of subgraph 0 wrapped in float32 (signatures updated)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    subgraph = model.subgraphs[0]
    int8 = schema.TensorType.INT8
    quantize = _opcode_index(model, schema.BuiltinOperator.QUANTIZE)
    dequantize = _opcode_index(model, schema.BuiltinOperator.DEQUANTIZE)
    renamed: dict[int, int] = {}
    front, back = [], []
    for pos, index in enumerate(list(subgraph.inputs)):
        if subgraph.tensors[index].type == int8:
            twin = _float_twin(subgraph, index, "_f32")
            front.append(_op(quantize, [twin], [index]))
            subgraph.inputs[pos] = twin
            renamed[index] = twin
    for pos, index in enumerate(list(subgraph.outputs)):
        if subgraph.tensors[index].type == int8:
            twin = _float_twin(subgraph, index, "_f32")
            back.append(_op(dequantize, [index], [twin]))
            subgraph.outputs[pos] = twin
            renamed[index] = twin
    subgraph.operators = front + list(subgraph.operators) + back
    for signature in model.signatureDefs or []:
        for tensor_map in list(signature.inputs or []) + list(signature.outputs or []):
            tensor_map.tensorIndex = renamed.get(tensor_map.tensorIndex, tensor_map.tensorIndex)
    builder = flatbuffers.Builder(max(1024, len(model_bytes) * 2))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def int8_output_ceiling(model_bytes: bytes) -> float | None:
    """The highest value the int8 model can give on its (single) output: what its int8 output tensor's 127 means
    once dequantised. None when the model's output is not an int8 tensor dequantised to float32 (as
    `with_float_io` wraps it) or there is more than one output."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    subgraph = model.subgraphs[0]
    if len(subgraph.outputs) != 1:
        return None
    dequantize = [i for i, code in enumerate(model.operatorCodes)
                  if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE]
    for op in subgraph.operators:
        if op.opcodeIndex in dequantize and list(op.outputs) == [subgraph.outputs[0]]:
            source = subgraph.tensors[op.inputs[0]]
            q = source.quantization
            if source.type != schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != 1:
                return None
            zero = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
            return float((127 - zero) * float(q.scale[0]))
    return None
