"""Op dispatch: one table per consumer of the IR, from node classes to what that consumer does with them.

Every renderer (each VHDL form, the HLS writer), every framework twin and
the twins' plan keep one ``OpTable``: adding an op is one entry in each.  A
node looks up its own class first, then its bases, so one entry can serve a
family (every data movement); a node no entry serves is refused with a
message that names the consumer, the op and the layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from mlinfn_compress.compress.ir.node import Node
from mlinfn_compress.errors import UserError

T = TypeVar("T")


class UnsupportedOp(UserError):
    """An op of the IR that a target or twin does not implement (exit code 2)."""


class OpTable(Generic[T]):
    """What ``what`` does with each node class."""

    def __init__(self, what: str, entries: Mapping[type[Node], T]) -> None:
        self.what = what
        self.entries = dict(entries)

    def find(self, node: Node) -> T | None:
        """The entry of the node's class or its nearest base (None when there is none)."""
        for cls in type(node).__mro__:
            if cls in self.entries:
                return self.entries[cls]
        return None

    def __getitem__(self, node: Node) -> T:
        entry = self.find(node)
        if entry is None:
            raise UnsupportedOp(
                f"layer '{node.name}' ({node.kind}, {type(node).__name__}): {self.what} has no implementation of "
                f"this op; it implements {', '.join(sorted(c.__name__ for c in self.entries))}"
            )
        return entry

    def __contains__(self, node: object) -> bool:
        return isinstance(node, Node) and self.find(node) is not None

    def __iter__(self) -> Iterator[type[Node]]:
        return iter(self.entries)
