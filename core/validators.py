"""Input checks shared by the case bank and the execution log."""
from __future__ import annotations

from typing import Any

NUL = "\x00"
NUL_MESSAGE = "Must not contain the NUL character (\\u0000): PostgreSQL text and JSON cannot store it."


def nul_path(value: Any, name: str) -> str | None:
    """Where a NUL character sits in a string or in any string or key of nested JSON, e.g.
    `context.steps[2].note`, or None. Iterative: JSON nested thousands deep is no problem."""
    stack: list[tuple[Any, str]] = [(value, name)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and NUL in key:
                    return f"{path} (a key)"
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None
