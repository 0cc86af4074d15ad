"""The intermediate representation: a graph of shaped tensors and typed nodes."""

from mlinfn_compress.compress.ir.elementwise import TABLE_FUNCTIONS, Cast, Clip, LeakyRelu, Table, align
from mlinfn_compress.compress.ir.graph import INPUT, IR_VERSION, Graph, UniqueNames
from mlinfn_compress.compress.ir.linear import Linear
from mlinfn_compress.compress.ir.merge import Add, Maximum, Merge, Minimum
from mlinfn_compress.compress.ir.movement import Concat, Crop, Pad, Reshape, Transpose, Upsample
from mlinfn_compress.compress.ir.node import IRError, Node, Shape
from mlinfn_compress.compress.ir.pool import Pool
from mlinfn_compress.compress.ir.softmax import Softmax
from mlinfn_compress.compress.ir.window import Window, patches

__all__ = [
    "INPUT",
    "IR_VERSION",
    "TABLE_FUNCTIONS",
    "Add",
    "Cast",
    "Clip",
    "Concat",
    "Crop",
    "Graph",
    "IRError",
    "LeakyRelu",
    "Linear",
    "Maximum",
    "Merge",
    "Minimum",
    "Node",
    "Pad",
    "Pool",
    "Reshape",
    "Shape",
    "Softmax",
    "Table",
    "Transpose",
    "UniqueNames",
    "Upsample",
    "Window",
    "align",
    "patches",
]
