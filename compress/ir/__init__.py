"""The intermediate representation: a graph of shaped tensors and typed nodes."""

from .elementwise import TABLE_FUNCTIONS, Add, Cast, Clip, LeakyRelu, Table, align
from .graph import INPUT, IR_VERSION, Graph, UniqueNames
from .linear import Linear
from .movement import Concat, Crop, Pad, Reshape, Transpose, Upsample
from .node import IRError, Node, Op, Shape
from .pool import Pool
from .softmax import Softmax
from .window import Window, patches

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
    "Node",
    "Op",
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
