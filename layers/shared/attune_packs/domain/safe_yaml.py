"""Safe YAML loading for hostile input (pack.yaml and component files from untrusted archives).

``yaml.safe_load`` builds no arbitrary objects but is not safe against expansion or exhaustion, so
:func:`load_yaml` works in three steps:

1. check size and encoding (UTF-8 only; a BOM is dropped; control characters are refused);
2. pre-scan the event stream, building nothing, and refuse anchors and aliases (so alias bombs cost
   nothing), merge keys, non-core tags (``!!python/...``, ``!custom``, ``!!binary``, ``!!set``...),
   more than one document, nesting deeper than ``max_depth`` and more than ``max_events`` events;
3. construct with a strict ``SafeLoader`` that refuses duplicate keys and non-scalar keys and keeps
   timestamps as the text written, so the result is plain JSON-compatible data.

Everything else resolves as ``yaml.safe_load`` would, YAML 1.1 quirks included: ``1.10`` is the float
``1.1``, ``no`` is ``False``, ``1:30`` is the int ``90``. Schemas must demand strings where strings
are meant (``version: "1.10"``). Two deliberate differences: a plain ``=`` is the string ``"="``
(``safe_load`` raises), and integers written with more than :data:`MAX_INT_CHARS` characters are
refused (``safe_load`` spends quadratic time on long sexagesimal ones like ``1:2:3:...``).

Every :class:`ManifestError` raised here starts with the ``source`` name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from attune_packs.errors import ManifestError

__all__ = ["MAX_INT_CHARS", "YamlLimits", "load_yaml"]

MAX_INT_CHARS = 256

_YAML_TAG = "tag:yaml.org,2002:"
# The YAML core schema's types, and "!" (the non-specific tag: "! text" is a string).
_CORE_TYPES = ("str", "int", "float", "bool", "null", "seq", "map")
_ALLOWED_TAGS = frozenset({"!"} | {_YAML_TAG + t for t in _CORE_TYPES})
# What YAML (and PyYAML's reader) refuses: C0 controls other than tab/LF/CR, DEL, C1 controls, and
# surrogates and non-characters.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Whether to use libyaml when PyYAML was built with it (tests switch this off to cover the fallback).
_USE_LIBYAML = True


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on what :func:`load_yaml` accepts. Keep ``max_depth`` in the low hundreds: composing
    nodes recurses once per level."""

    max_bytes: int = 1_048_576
    max_depth: int = 64
    max_events: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_events"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"YamlLimits.{name} must be a positive int, not {value!r}")


def _error(source: str, problem: str, code: str, mark: Any = None, **details: Any) -> ManifestError:
    """A ManifestError whose message starts with ``source`` and names the 1-based position if known."""
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
        details = {"line": line, "column": column, **details}
        message = f"{source}: line {line}, column {column}: {problem}"
    else:
        message = f"{source}: {problem}"
    return ManifestError(message, error_code=code, details=details or None)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


# --- step 1: bytes to text ---------------------------------------------------------------------


def _line_and_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _to_text(data: str | bytes, source: str, limits: YamlLimits) -> str:
    too_large = f"is larger than the limit of {limits.max_bytes} bytes"
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > limits.max_bytes:
            raise _error(source, f"{too_large} ({len(raw)} bytes)", "MANIFEST_TOO_LARGE")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise _error(
                source,
                f"is not valid UTF-8 (bad byte at offset {exc.start}, line {line}); save it as UTF-8",
                "MANIFEST_ENCODING",
                offset=exc.start,
                line=line,
            ) from None
    elif isinstance(data, str):
        if len(data) > limits.max_bytes:
            raise _error(source, too_large, "MANIFEST_TOO_LARGE")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise _error(source, f"contains an unpaired surrogate at index {exc.start}", "MANIFEST_ENCODING") from None
        if size > limits.max_bytes:
            raise _error(source, f"{too_large} ({size} bytes)", "MANIFEST_TOO_LARGE")
        text = data
    else:
        raise TypeError(f"load_yaml() needs str or bytes, not {type(data).__name__}")
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line, column = _line_and_column(text, bad.start())
        raise ManifestError(
            f"{source}: line {line}, column {column}: control character U+{ord(bad.group()):04X} is not"
            " allowed in YAML (is this a binary or UTF-16 file?)",
            error_code="MANIFEST_ENCODING",
            details={"line": line, "column": column},
        )
    return text


# --- step 2: pre-scan the event stream ---------------------------------------------------------


def _syntax_error(source: str, exc: yaml.YAMLError) -> ManifestError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        # libyaml scans a run of '[' or '{' ahead of the events, so its own nesting cap (1000) can
        # fire before the pre-scan's depth check sees the events: report it as what it is.
        if "maximum nesting depth" in problem:
            code, problem = "MANIFEST_TOO_DEEP", f"is nested too deeply: {problem}"
        else:
            code, problem = "MANIFEST_SYNTAX", f"YAML syntax error: {problem}"
        if mark is not None:
            return _error(source, problem, code, mark)
        return _error(source, problem, code, line=None, column=None)
    return _error(source, f"YAML syntax error: {exc}", "MANIFEST_SYNTAX", line=None, column=None)


def _parser_class() -> type:
    if _USE_LIBYAML and hasattr(yaml, "CSafeLoader"):
        return yaml.CSafeLoader
    return yaml.SafeLoader


def _prescan(text: str, source: str, limits: YamlLimits) -> None:
    """Walk the parser's events without building anything; raise on the first hazard."""
    events = yaml.parse(text, Loader=_parser_class())
    depth = count = documents = 0
    try:
        for event in events:
            count += 1
            mark = event.start_mark
            if count > limits.max_events:
                raise _error(
                    source,
                    f"is too complex (more than {limits.max_events} YAML events)",
                    "MANIFEST_TOO_COMPLEX",
                    mark,
                )
            if isinstance(event, yaml.AliasEvent):
                raise _error(
                    source,
                    f"alias '*{event.anchor}' is not allowed (anchors and aliases are refused)",
                    "MANIFEST_ALIAS_FORBIDDEN",
                    mark,
                )
            if (anchor := getattr(event, "anchor", None)) is not None:
                raise _error(
                    source,
                    f"anchor '&{anchor}' is not allowed (anchors and aliases are refused)",
                    "MANIFEST_ALIAS_FORBIDDEN",
                    mark,
                )
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _ALLOWED_TAGS:
                raise _error(
                    source,
                    f"tag {_short_tag(tag)!r} is not allowed: only plain strings, numbers,"
                    " booleans, null, lists and mappings",
                    "MANIFEST_TAG_FORBIDDEN",
                    mark,
                )
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _error(
                        source,
                        "contains more than one YAML document ('---'); put everything in one",
                        "MANIFEST_MULTIPLE_DOCUMENTS",
                        mark,
                    )
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > limits.max_depth:
                    raise _error(
                        source,
                        f"is nested more than {limits.max_depth} levels deep",
                        "MANIFEST_TOO_DEEP",
                        mark,
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
            elif (
                isinstance(event, yaml.ScalarEvent) and event.value == "<<" and event.tag is None and event.implicit[0]
            ):
                raise _error(
                    source,
                    "merge keys ('<<') are not allowed",
                    "MANIFEST_ALIAS_FORBIDDEN",
                    mark,
                )
    except yaml.YAMLError as exc:
        raise _syntax_error(source, exc) from None
    finally:
        events.close()  # type: ignore[attr-defined]  # types-PyYAML: parse() -> Iterator; it is a generator


# --- step 3: construct -------------------------------------------------------------------------


class _StrictConstructor:
    """Mixed into a SafeLoader: duplicate and non-scalar keys refused, value errors located."""

    source = "<yaml>"

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[misc]
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            problem = (
                f"invalid {_short_tag(node.tag)} value {str(node.value)[:60]!r}"
                if isinstance(node, yaml.ScalarNode)
                else f"invalid {_short_tag(node.tag)}"
            )
            raise _error(self.source, f"{problem}: {exc}", "MANIFEST_INVALID", node.start_mark) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise _error(self.source, "expected a mapping", "MANIFEST_INVALID", node.start_mark)
        mapping: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key is not None and not isinstance(key, str | int | bool):
                raise _error(
                    self.source,
                    f"mapping key of type {type(key).__name__} is not allowed:"
                    " keys must be strings, integers, booleans or null",
                    "MANIFEST_INVALID",
                    key_node.start_mark,
                )
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _error(
                    self.source,
                    f"duplicate key {key!r} (first defined at line {first_line[key]})",
                    "MANIFEST_DUPLICATE_KEY",
                    key_node.start_mark,
                    key=key,
                )
            first_line[key] = line
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_strict_int(self, node: Any) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise _error(
                self.source,
                f"integer longer than {MAX_INT_CHARS} characters (quote it if it is text)",
                "MANIFEST_INVALID",
                node.start_mark,
            )
        return yaml.SafeLoader.construct_yaml_int(self, node)  # type: ignore[arg-type]

    def construct_as_text(self, node: Any) -> str:
        """Timestamps (and a plain ``=``) stay the text that was written."""
        return str(node.value)


def _strict_loader(base: type) -> Any:
    """A subclass of ``base``; ``add_constructor`` copies the table, so ``base`` is unchanged."""
    loader: Any = type(f"_Strict{base.__name__}", (_StrictConstructor, base), {})
    loader.add_constructor(_YAML_TAG + "timestamp", _StrictConstructor.construct_as_text)
    loader.add_constructor(_YAML_TAG + "value", _StrictConstructor.construct_as_text)
    loader.add_constructor(_YAML_TAG + "int", _StrictConstructor.construct_strict_int)
    return loader


_PY_LOADER = _strict_loader(yaml.SafeLoader)
_C_LOADER = _strict_loader(yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else None


def _construct(text: str, source: str) -> Any:
    loader_class = _C_LOADER if _USE_LIBYAML and _C_LOADER is not None else _PY_LOADER
    loader = loader_class(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise _error(source, problem, "MANIFEST_INVALID", mark) from None
    except yaml.YAMLError as exc:
        raise _error(source, str(exc), "MANIFEST_INVALID") from None
    finally:
        loader.dispose()


def load_yaml(data: str | bytes, *, source: str = "<yaml>", limits: YamlLimits = YamlLimits()) -> Any:
    """Parse one YAML document from untrusted input into plain data (None if it is empty).

    Raises :class:`ManifestError` with a ``MANIFEST_*`` code and a message starting with ``source``.
    """
    text = _to_text(data, source, limits)
    try:
        _prescan(text, source, limits)
        return _construct(text, source)
    except RecursionError:
        raise _error(source, "is nested too deeply to load", "MANIFEST_TOO_DEEP") from None
