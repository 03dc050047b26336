"""Checking a tool's arguments against its JSON schema, and the schema the model is asked with.

Tools use a small subset of JSON schema (types, enum, const, bounds, properties, required,
additionalProperties, items, anyOf); that subset is checked here without another dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def argument_problems(schema: Mapping[str, Any], value: Any, where: str = "arguments") -> list[str]:
    """Where ``value`` breaks ``schema``, one phrase each; covers the JSON-schema subset tools use."""
    if "anyOf" in schema:
        if all(argument_problems(option, value, where) for option in schema["anyOf"]):
            return [f"{where} matches none of the allowed forms"]
        return []
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        # bool is an int in Python, but true is not a number in JSON.
        if not any(
            isinstance(value, _TYPES.get(name, object))
            and not (isinstance(value, bool) and name != "boolean")
            for name in names
        ):
            return [f"{where} must be {' or '.join(names)}, not {json.dumps(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where} must be one of {', '.join(json.dumps(v) for v in schema['enum'])}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where} must be {json.dumps(schema['const'])}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where} is too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where} is longer than {schema['maxLength']} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where} must be at most {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where} needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where} takes at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                problems += argument_problems(schema["items"], item, f"{where}[{index}]")
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        problems += [f"{name!r} is missing" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in properties:
                problems += argument_problems(properties[name], item, name)
            elif schema.get("additionalProperties") is False:
                problems.append(f"{name!r} is not an argument of this tool")
            elif isinstance(schema.get("additionalProperties"), Mapping):
                problems += argument_problems(schema["additionalProperties"], item, name)
    return problems


# llama.cpp turns length and item bounds into repeated grammar rules and refuses (then, in
# llama-cpp-python 0.3.36, crashes) when they multiply past its limit: a 2000-character string
# was enough.  The model is asked with them left out; the full schema is checked afterwards.
_BOUNDS_LEFT_TO_THE_CHECK = frozenset({"minLength", "maxLength", "minItems", "maxItems"})


def model_schema(schema: Any) -> Any:
    """``schema`` without the bounds that llama.cpp's grammar compiler cannot take."""
    if isinstance(schema, Mapping):
        return {
            key: model_schema(value) for key, value in schema.items() if key not in _BOUNDS_LEFT_TO_THE_CHECK
        }
    if isinstance(schema, list):
        return [model_schema(item) for item in schema]
    return schema
