"""Reading generated Terraform with python-hcl2 (version 8 keeps the quotes of names and strings)."""

from __future__ import annotations

from typing import Any

import hcl2


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def parse(text: str) -> dict[str, Any]:
    """Blocks by kind: ``{"resource": {(type, name): body}, "variable": {name: body}, ...}``."""
    raw = hcl2.loads(text)
    out: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}}
    for kind in ("resource", "data"):
        for block in raw.get(kind, []):
            for rtype, named in block.items():
                for name, body in named.items():
                    out[kind][(unquote(rtype), unquote(name))] = unquote(body)
    for block in raw.get("variable", []):
        for name, body in block.items():
            out["variable"][unquote(name)] = unquote(body)
    return out


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested block (hcl2 gives a list of one dict)."""
    value = body[name]
    return value[0] if isinstance(value, list) else value
