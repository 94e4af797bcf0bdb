"""Check a request against its schema in `sheetsync.server.schemas`; every problem named, none missed.

Supports the small part of JSON Schema the API uses: object (required, properties,
additionalProperties: false), array (items, maxItems), string (minLength, maxLength, pattern,
enum), integer (minimum, maximum), boolean. Query strings arrive as text and are converted by
the declared type first. Strings must be valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import ApiError

TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}


def validate_body(body: Any, schema: dict) -> dict:
    """The body with defaults filled in, or `ApiError` 400 listing every problem."""
    problems = check(body, schema, "")
    if problems:
        raise bad_request(problems)
    return with_defaults(body, schema)


def validate_query(args: Mapping[str, list[str]], schema: dict) -> dict:
    """Query parameters converted to their declared types, defaults filled in, or `ApiError` 400."""
    props = schema["properties"]
    problems, values = [], {}
    unknown = [k for k in args if k not in props]
    if unknown:
        problems.append(problem("query", "unknown parameter(s): " + ", ".join(clip(k) for k in unknown)
                                + "; expected only " + ", ".join(props)))
    for name in schema.get("required", []):
        if name not in args:
            problems.append(problem(name, "required"))
    for name, given in args.items():
        if name not in props:
            continue
        if len(given) > 1:
            problems.append(problem(name, "given more than once"))
            continue
        converted = convert(given[0], props[name])
        if converted is None:
            problems.append(problem(name, f"expected {article(props[name]['type'])}, found {clip(given[0])!r}"))
            continue
        found = check(converted, props[name], name)
        problems += found
        if not found:
            values[name] = converted
    if problems:
        raise bad_request(problems)
    return with_defaults(values, schema)


def check(value: Any, schema: dict, where: str) -> list[dict]:
    kind = schema.get("type")
    if kind and not is_type(value, kind):
        return [problem(where, f"expected {article(kind)}, found {json_type(value)}")]
    if kind == "object":
        return check_object(value, schema, where)
    if kind == "array":
        problems = []
        if len(value) > schema.get("maxItems", len(value)):
            problems.append(problem(where, f"at most {schema['maxItems']} items, found {len(value)}"))
        for i, item in enumerate(value[:schema.get("maxItems", len(value))]):
            problems += check(item, schema.get("items", {}), f"{where}[{i}]")
        return problems
    if kind == "string":
        return check_string(value, schema, where)
    if kind == "integer":
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            return [problem(where, f"must be between {schema['minimum']} and {schema['maximum']}")]
    return []


def check_object(value: dict, schema: dict, where: str) -> list[dict]:
    props = schema.get("properties", {})
    problems = []
    unknown = [k for k in value if k not in props]
    if unknown and schema.get("additionalProperties") is False:
        problems.append(problem(where, "unknown field(s): " + ", ".join(clip(k) for k in unknown)
                                + "; expected only " + ", ".join(props)))
    missing = [k for k in schema.get("required", []) if k not in value]
    problems += [problem(join(where, k), "required") for k in missing]
    for key, spec in props.items():
        if key in value:
            problems += check(value[key], spec, join(where, key))
    return problems


def check_string(value: str, schema: dict, where: str) -> list[dict]:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return [problem(where, "not valid Unicode text")]
    if "enum" in schema and value not in schema["enum"]:
        return [problem(where, f"must be one of {', '.join(schema['enum'])}, not {clip(value)!r}")]
    if len(value) < schema.get("minLength", 0):
        return [problem(where, "must not be empty" if schema["minLength"] == 1
                        else f"at least {schema['minLength']} characters")]
    if len(value) > schema.get("maxLength", len(value)):
        return [problem(where, f"at most {schema['maxLength']} characters, found {len(value)}")]
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return [problem(where, f"{clip(value)!r} is not in the expected form"
                        + (f" (e.g. {schema['example']!r})" if "example" in schema else ""))]
    return []


def convert(text: str, spec: dict):
    kind = spec.get("type")
    if kind == "integer":
        return int(text) if re.fullmatch(r"[+-]?[0-9]{1,9}", text) else None
    if kind == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(text.lower())
    return text


def with_defaults(value: dict, schema: dict) -> dict:
    done = dict(value)
    for key, spec in schema.get("properties", {}).items():
        if key not in done and "default" in spec:
            done[key] = spec["default"]
    return done


def is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES.get(kind, object))


def json_type(value: Any) -> str:
    for name, kind in (("null", type(None)), ("a boolean", bool), ("a number", (int, float)),
                       ("text", str), ("a list", list), ("an object", dict)):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def article(kind: str) -> str:
    return {"object": "a JSON object", "array": "a list", "string": "text", "integer": "an integer",
            "boolean": "true or false"}.get(kind, kind)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def clip(text: str, limit: int = 60) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


def problem(field: str, message: str) -> dict:
    return {"field": field or "body", "message": message}


def bad_request(problems: list[dict]) -> ApiError:
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return ApiError(400, "invalid_request", detail, problems)
