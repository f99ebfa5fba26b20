"""YAML without its bombs: ``yaml.safe_load`` that refuses, before building anything, a
document whose aliases refer to themselves or expand it past a number of values (a
"billion laughs" file is a few hundred bytes that expand to 10^9 strings)."""

from __future__ import annotations

from typing import Any

import yaml


class UnsafeYaml(ValueError):
    """A YAML document dtf refuses to build; ``str(err)`` says why in a few words."""


def safe_load(text: str, max_values: int) -> Any:
    """``yaml.safe_load(text)``, refused with :class:`UnsafeYaml` when the document holds
    more than ``max_values`` values once its aliases are expanded, when an alias refers to
    a value that holds it, or when it nests deeper than Python can follow; a syntax error
    is ``yaml.YAMLError`` as with ``safe_load``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > max_values:
            raise UnsafeYaml(
                f"holds more than {max_values} values once its YAML aliases are expanded: "
                "use fewer aliases, or split the run"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise UnsafeYaml("not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node) -> int:
    """How many values (scalars, lists, mappings) the document at ``root`` holds with every
    alias written out; :class:`UnsafeYaml` for an alias to a value that holds it.

    Each node is counted once, and the walk keeps its own stack, so a bomb costs as
    little as its text and any depth is fine.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes whose children are being counted: ancestors
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        key = id(node)
        if children_counted:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise UnsafeYaml("a YAML alias refers to a value that holds it (it never ends)")
        open_nodes.add(key)
        stack.append((node, True))
        stack += [(child, False) for child in _children(node) if id(child) not in sizes]
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
