"""The JSON Schema subset packs write, checked structurally and used to validate values.

Packs write schemas in two forms, and both are accepted wherever a schema is expected
(``conf_schema``, ``config.schema.yaml``, ``parameters``, ``output`` / ``output_schema``):

* a JSON Schema object: ``{type: object, properties: {...}, required: [a, b]}``;
* StackStorm's flat form: a mapping of property name to property schema, ``required: true`` and
  ``secret: true`` written inline in each property (Attune's core pack uses it too).

:func:`normalise` turns either into the object form (inline ``required`` flags move into the
parent's ``required`` list). :func:`check_schema` reports what is structurally wrong, each problem
with its path; :func:`validate` reports where a value does not match. Pure and dependency-free:
the layer does not ship the ``jsonschema`` package, and packs need only the keywords below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
MAX_DEPTH = 32

Problems = list[tuple[str, str]]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def is_object_form(value: Any) -> bool:
    """``{type: object, ...}``: a schema, not a flat mapping with a property called ``type``."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and (value["type"] == "object" or "properties" in value)
    )


def normalise(value: dict[str, Any]) -> dict[str, Any]:
    """The object form of a schema written in either form (checked first with :func:`check_schema`)."""
    if is_object_form(value):
        return _normalise_object(value)
    return _normalise_object({"type": "object", "properties": value})


def _normalise_object(schema: dict[str, Any]) -> dict[str, Any]:
    result = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = list(schema["required"]) if isinstance(schema.get("required"), list) else []
        converted: dict[str, Any] = {}
        for name, sub in properties.items():
            if isinstance(sub, dict):
                sub = dict(sub)
                if sub.get("required") is True and name not in required:
                    required.append(name)
                if isinstance(sub.get("required"), bool):
                    del sub["required"]
                sub = _normalise_object(sub) if sub.get("type") == "object" else sub
            converted[str(name)] = sub
        result["properties"] = converted
        if required:
            result["required"] = required
    return result


def check_schema(value: Any, path: str = "", *, flat_allowed: bool = True) -> Problems:
    """What is wrong with a schema written in either form."""
    if not isinstance(value, dict):
        return [(path, f"must be a mapping (a JSON Schema), not {type(value).__name__}")]
    if is_object_form(value) or not flat_allowed:
        return _check(value, path, 0)
    problems: Problems = []
    for name, sub in value.items():
        problems.extend(_check_property(sub, _join(path, name), 0))
    return problems


def _check_property(sub: Any, path: str, depth: int) -> Problems:
    if not isinstance(sub, dict):
        return [(path, f"must be a mapping (the property's schema), not {type(sub).__name__}")]
    return _check(sub, path, depth + 1)


def _check(schema: dict[str, Any], path: str, depth: int) -> Problems:
    if depth > MAX_DEPTH:
        return [(path, f"nests deeper than {MAX_DEPTH} levels")]
    problems: Problems = []
    declared = schema.get("type")
    if declared is not None:
        kinds = declared if isinstance(declared, list) else [declared]
        if not kinds or not all(isinstance(k, str) and k in TYPES for k in kinds):
            known = ", ".join(sorted(TYPES))
            problems.append((_join(path, "type"), f"{declared!r} is not a JSON Schema type ({known})"))
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        problems.append((_join(path, "enum"), "must be a non-empty list of the allowed values"))
    for key in _NUMERIC:
        value = schema.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            if not (key.startswith("exclusive") and isinstance(value, bool)):  # draft 4 booleans
                problems.append((_join(path, key), f"must be a number, not {value!r}"[:200]))
    for key in _COUNTS:
        value = schema.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            problems.append((_join(path, key), f"must be a non-negative integer, not {value!r}"[:200]))
    if isinstance(schema.get("pattern"), str):
        try:
            re.compile(schema["pattern"])
        except re.error as exc:
            problems.append((_join(path, "pattern"), f"is not a regular expression: {exc}"))
    elif "pattern" in schema:
        problems.append((_join(path, "pattern"), "must be a regular expression (text)"))
    required = schema.get("required")
    if required is not None and not isinstance(required, bool):
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            problems.append((_join(path, "required"), "must be a list of property names (or true/false inline)"))
    problems.extend(_check_children(schema, path, depth))
    return problems


def _check_children(schema: dict[str, Any], path: str, depth: int) -> Problems:
    problems: Problems = []
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            problems.append((_join(path, "properties"), "must be a mapping of property name to schema"))
        else:
            for name, sub in properties.items():
                problems.extend(_check_property(sub, _join(_join(path, "properties"), name), depth))
    items = schema.get("items")
    if items is not None:
        entries = items if isinstance(items, list) else [items]
        for index, sub in enumerate(entries):
            where = _join(path, "items") if not isinstance(items, list) else _join(_join(path, "items"), index)
            problems.extend(_check_property(sub, where, depth))
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        problems.extend(_check_property(extra, _join(path, "additionalProperties"), depth))
    return problems


# --- values -------------------------------------------------------------------------------------

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _has_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PYTHON_TYPES[kind])


def validate(value: Any, schema: dict[str, Any], path: str = "", depth: int = 0) -> Problems:
    """Where ``value`` does not match ``schema`` (the object form of :func:`normalise`)."""
    if depth > MAX_DEPTH:
        return [(path, f"nests deeper than {MAX_DEPTH} levels")]
    declared = schema.get("type")
    kinds = [k for k in (declared if isinstance(declared, list) else [declared]) if k in TYPES]
    if kinds and not any(_has_type(value, k) for k in kinds):
        return [(path, f"must be of type {' or '.join(kinds)}, not {type(value).__name__} {value!r}"[:300])]
    problems: Problems = []
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        problems.append((path, f"{value!r} is not one of {schema['enum']!r}"[:300]))
    if "const" in schema and value != schema["const"]:
        problems.append((path, f"must be {schema['const']!r}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems.extend(_validate_number(value, schema, path))
    if isinstance(value, str):
        problems.extend(_validate_string(value, schema, path))
    if isinstance(value, list):
        problems.extend(_validate_array(value, schema, path, depth))
    if isinstance(value, dict):
        problems.extend(_validate_object(value, schema, path, depth))
    return problems


def _validate_number(value: float, schema: dict[str, Any], path: str) -> Problems:
    checks: tuple[tuple[str, Callable[[float], bool], str], ...] = (
        ("minimum", lambda bound: value < bound, "at least"),
        ("maximum", lambda bound: value > bound, "at most"),
        ("exclusiveMinimum", lambda bound: value <= bound, "more than"),
        ("exclusiveMaximum", lambda bound: value >= bound, "less than"),
    )
    return [
        (path, f"{value!r} must be {words} {schema[key]!r}")
        for key, fails, words in checks
        if isinstance(schema.get(key), int | float) and not isinstance(schema[key], bool) and fails(schema[key])
    ]


def _validate_string(value: str, schema: dict[str, Any], path: str) -> Problems:
    problems: Problems = []
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        problems.append((path, f"must be at least {schema['minLength']} characters long"))
    if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
        problems.append((path, f"must be at most {schema['maxLength']} characters long"))
    if isinstance(schema.get("pattern"), str) and re.search(schema["pattern"], value) is None:
        problems.append((path, f"{value!r} does not match the pattern {schema['pattern']!r}"[:300]))
    return problems


def _validate_array(value: list[Any], schema: dict[str, Any], path: str, depth: int) -> Problems:
    problems: Problems = []
    if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
        problems.append((path, f"must have at least {schema['minItems']} items"))
    if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
        problems.append((path, f"must have at most {schema['maxItems']} items"))
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            problems.extend(validate(item, _normalise_object(items), _join(path, index), depth + 1))
    return problems


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str, depth: int) -> Problems:
    problems: Problems = []
    declared, listed = schema.get("properties"), schema.get("required")
    properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
    required: list[Any] = listed if isinstance(listed, list) else []
    for name in required:
        if name not in value:
            problems.append((_join(path, name), "is required"))
    for name, item in value.items():
        sub = properties.get(name)
        if isinstance(sub, dict):
            problems.extend(validate(item, _normalise_object(sub), _join(path, name), depth + 1))
        elif schema.get("additionalProperties") is False:
            problems.append((_join(path, name), "is not a property the schema declares"))
        elif isinstance(schema.get("additionalProperties"), dict):
            problems.extend(validate(item, schema["additionalProperties"], _join(path, name), depth + 1))
    return problems
