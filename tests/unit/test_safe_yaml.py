"""Safe YAML loading of hostile input (attune_packs.domain.safe_yaml)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from attune_packs.domain import safe_yaml
from attune_packs.domain.safe_yaml import YamlLimits, load_yaml
from attune_packs.errors import ManifestError

BILLION_LAUGHS = textwrap.dedent(
    """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """
)


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with PyYAML's C parser and again with its pure-Python fallback."""
    if request.param == "libyaml" and not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(safe_yaml, "_USE_LIBYAML", request.param == "libyaml")
    yield request.param


def refused(data: str | bytes, source: str = "pack.yaml", **kwargs: Any) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_yaml(data, source=source, **kwargs)
    assert info.value.message.startswith(source)
    return info.value


# --- expansion, depth and size ---------------------------------------------------------------------


def test_alias_bomb_is_refused_fast_without_expanding(parser: str) -> None:
    started = time.perf_counter()
    error = refused(BILLION_LAUGHS)
    elapsed = time.perf_counter() - started
    assert error.error_code == "MANIFEST_ALIAS_FORBIDDEN"
    assert elapsed < 2.0  # refused at the first anchor; expanding would take far longer


@pytest.mark.parametrize(
    "document",
    [
        "base: &base {x: 1}\ncopy: *base\n",
        "a: &anchor 1\n",
        "merged:\n  <<: {x: 1}\n  y: 2\n",
        "list: [&x a, b]\n",
    ],
    ids=["anchor-and-alias", "unused-anchor", "merge-key", "anchor-in-flow"],
)
def test_anchors_aliases_and_merge_keys_are_refused(parser: str, document: str) -> None:
    assert refused(document).error_code == "MANIFEST_ALIAS_FORBIDDEN"


def test_quoted_double_angle_key_is_an_ordinary_string(parser: str) -> None:
    assert load_yaml("'<<': 1\n") == {"<<": 1}


@pytest.mark.parametrize(
    "document",
    ["[" * 10_000, "{" * 10_000, "- " * 5_000 + "x\n", "[" * 10_000 + "]" * 10_000],
    ids=["flow-sequences", "flow-mappings", "block-sequences", "balanced-flow"],
)
def test_deep_nesting_is_refused_without_crashing(parser: str, document: str) -> None:
    assert refused(document).error_code == "MANIFEST_TOO_DEEP"


def test_nesting_up_to_the_limit_loads_and_one_more_is_refused(parser: str) -> None:
    assert load_yaml("[" * 64 + "]" * 64) is not None
    assert refused("[" * 65 + "]" * 65).error_code == "MANIFEST_TOO_DEEP"
    assert refused("[[[1]]]", limits=YamlLimits(max_depth=2)).error_code == "MANIFEST_TOO_DEEP"


def test_recursion_error_while_composing_becomes_too_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only reachable when a caller raises max_depth far above the default; the pure-Python composer
    # recurses once per level.
    monkeypatch.setattr(safe_yaml, "_USE_LIBYAML", False)
    depth = sys.getrecursionlimit()  # the composer uses about two frames per level
    document = "[" * depth + "]" * depth
    error = refused(document, limits=YamlLimits(max_depth=depth + 1))
    assert error.error_code == "MANIFEST_TOO_DEEP"


def test_too_many_events_is_refused(parser: str) -> None:
    document = "[" + ", ".join(["1"] * 50) + "]"
    assert load_yaml(document, limits=YamlLimits(max_events=100)) == [1] * 50
    assert refused(document, limits=YamlLimits(max_events=40)).error_code == "MANIFEST_TOO_COMPLEX"


def test_hostile_documents_do_not_take_down_the_interpreter() -> None:
    """The same inputs in a child process with a memory cap and a timeout: a crash or a blow-up
    there fails this test instead of killing pytest."""
    script = textwrap.dedent(
        """
        import resource, sys
        cap = 512 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        from attune_packs.errors import ManifestError
        from attune_packs.domain.safe_yaml import load_yaml
        for document in (sys.argv[1], "[" * 100_000, "{a: " * 50_000):
            try:
                load_yaml(document)
            except ManifestError as exc:
                print(exc.error_code)
        """
    )
    pytest.importorskip("resource")
    result = subprocess.run([sys.executable, "-c", script, BILLION_LAUGHS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MANIFEST_ALIAS_FORBIDDEN", "MANIFEST_TOO_DEEP", "MANIFEST_TOO_DEEP"]


def test_oversize_input_is_refused_before_parsing(parser: str) -> None:
    limits = YamlLimits(max_bytes=100)
    # Invalid YAML on purpose: the size check must come first.
    assert refused(b"[" * 101, limits=limits).error_code == "MANIFEST_TOO_LARGE"
    assert refused("[" * 101, limits=limits).error_code == "MANIFEST_TOO_LARGE"
    # 60 characters, but 120 bytes in UTF-8
    assert refused("\u00e9" * 60, limits=limits).error_code == "MANIFEST_TOO_LARGE"
    assert load_yaml(b"a: " + b"x" * 97, limits=limits) == {"a": "x" * 97}


def test_default_size_limit_is_one_mebibyte() -> None:
    assert YamlLimits().max_bytes == 1_048_576
    assert refused(b"#" * 1_048_577).error_code == "MANIFEST_TOO_LARGE"


def test_long_integers_are_refused_rather_than_computed(parser: str) -> None:
    # safe_load would spend quadratic time on a long base-60 integer like 1:2:3:...
    error = refused("n: " + ":".join(["1"] * 5_000) + "\n")
    assert error.error_code == "MANIFEST_INVALID"
    assert refused("n: " + "9" * 5_000 + "\n").error_code == "MANIFEST_INVALID"
    assert load_yaml("n: '" + "9" * 5_000 + "'\n") == {"n": "9" * 5_000}


@pytest.mark.parametrize("field", ["max_bytes", "max_depth", "max_events"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError):
        YamlLimits(**{field: 0})


# --- tags and documents --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "run: !!python/object/apply:os.system ['echo pwned']\n",
        "run: !!python/name:os.system\n",
        "run: !!python/object/new:subprocess.Popen [['id']]\n",
        "run: !<tag:yaml.org,2002:python/object/apply:os.system> ['id']\n",
        "%TAG !! tag:yaml.org,2002:python/\n---\nrun: !!name:os.system\n",
        "%TAG !e! tag:example.com,2000:\n---\nrun: !e!thing x\n",
        "x: !foo bar\n",
        "x: !!binary aGVsbG8=\n",
        "x: !!set {a, b}\n",
        "x: !!omap [a: 1]\n",
        "x: !!timestamp 2020-01-01\n",
        "x: !!merge <<\n",
    ],
)
def test_non_core_tags_are_refused(parser: str, document: str) -> None:
    assert refused(document).error_code == "MANIFEST_TAG_FORBIDDEN"


def test_python_object_tag_is_refused_without_running_anything(parser: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    calls: list[str] = []
    monkeypatch.setattr(os, "system", calls.append)
    refused("run: !!python/object/apply:os.system ['echo pwned']\n")
    assert calls == []


def test_core_tags_are_allowed(parser: str) -> None:
    document = "a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: !!bool true\ne: !!null ''\nf: !!seq [1]\n"
    assert load_yaml(document) == {"a": "12", "b": 7, "c": 1.0, "d": True, "e": None, "f": [1]}


def test_core_tag_with_a_bad_value_is_invalid_with_its_line(parser: str) -> None:
    error = refused("ok: 1\nn: !!int abc\n")
    assert error.error_code == "MANIFEST_INVALID"
    assert error.details["line"] == 2


@pytest.mark.parametrize(
    "document",
    ["a: 1\n---\nb: 2\n", "--- a\n--- b\n", "---\na: 1\n...\n---\nb: 2\n"],
)
def test_several_documents_are_refused(parser: str, document: str) -> None:
    assert refused(document).error_code == "MANIFEST_MULTIPLE_DOCUMENTS"


def test_one_document_with_explicit_markers_loads(parser: str) -> None:
    assert load_yaml("---\na: 1\n...\n") == {"a": 1}


@pytest.mark.parametrize("document", ["", "   \n\n", "# only a comment\n", "---\n", b"", "\ufeff"])
def test_empty_document_is_none(parser: str, document: str | bytes) -> None:
    assert load_yaml(document) is None


# --- keys ----------------------------------------------------------------------------------------


def test_duplicate_key_is_refused_naming_key_source_and_line(parser: str) -> None:
    error = refused("ref: demo\nversion: 1.0.0\nref: other\n", source="packs/demo/pack.yaml")
    assert error.error_code == "MANIFEST_DUPLICATE_KEY"
    assert error.message.startswith("packs/demo/pack.yaml")
    assert "'ref'" in error.message
    assert "line 3" in error.message and "line 1" in error.message
    assert error.details["line"] == 3


def test_duplicate_key_in_a_nested_mapping_is_refused(parser: str) -> None:
    error = refused("parameters:\n  url: {type: string}\n  url: {type: integer}\n")
    assert error.error_code == "MANIFEST_DUPLICATE_KEY"
    assert error.details["line"] == 3


def test_keys_that_python_considers_equal_are_duplicates(parser: str) -> None:
    # YAML 1.1 reads `true` as True, and True == 1 in Python: the second would overwrite the first.
    assert refused("1: a\ntrue: b\n").error_code == "MANIFEST_DUPLICATE_KEY"


@pytest.mark.parametrize(
    "document",
    ["? [a, b]\n: 1\n", "? {a: 1}\n: 1\n", "1.5: x\n", "2020-01-01: x\n"],
    ids=["list-key", "mapping-key", "float-key", "timestamp-key-is-fine"],
)
def test_keys_must_be_strings_ints_bools_or_null(parser: str, document: str) -> None:
    if document.startswith("2020"):
        assert load_yaml(document) == {"2020-01-01": "x"}
    else:
        assert refused(document).error_code == "MANIFEST_INVALID"


def test_null_bool_and_int_keys_load(parser: str) -> None:
    assert load_yaml("~: a\nfalse: b\n3: c\n") == {None: "a", False: "b", 3: "c"}


# --- encoding and syntax -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"name: caf\xe9\n",  # Latin-1
        "name: caf\u00e9\n".encode("utf-16"),  # UTF-16 with its BOM
        b"\xff\xfe\x00\x00",
        b"name: \xc3\n",  # truncated sequence
    ],
)
def test_bytes_that_are_not_utf8_are_refused(parser: str, data: bytes) -> None:
    assert refused(data).error_code == "MANIFEST_ENCODING"


def test_control_characters_are_refused_with_their_position(parser: str) -> None:
    error = refused(b"a: 1\nb: x\x00y\n")
    assert error.error_code == "MANIFEST_ENCODING"
    assert error.details == {"line": 2, "column": 5}


def test_utf8_with_bom_loads(parser: str) -> None:
    assert load_yaml(b"\xef\xbb\xbfname: caf\xc3\xa9\n") == {"name": "caf\u00e9"}
    assert load_yaml("\ufeffname: x\n") == {"name": "x"}


@pytest.mark.parametrize(
    ("document", "line", "column"),
    [
        ("ref: demo\nname: Demo\n  bad: indent\n", 3, 6),
        ("ref: demo\nkeywords: [a, b\nversion: 1.0.0\n", 3, 8),
        ("ref: demo\n\tname: tab\n", 2, 1),
        ("ref: 'unterminated\n", 2, 1),
    ],
    ids=["bad-indent", "unclosed-flow", "tab-indent", "unterminated-quote"],
)
def test_syntax_error_reports_source_line_and_column(parser: str, document: str, line: int, column: int) -> None:
    error = refused(document, source="packs/demo/pack.yaml")
    assert error.error_code == "MANIFEST_SYNTAX"
    assert error.details == {"line": line, "column": column}
    assert error.message.startswith(f"packs/demo/pack.yaml: line {line}, column {column}:")


@pytest.mark.parametrize(
    "document",
    [BILLION_LAUGHS, "[" * 100, "a: 1\na: 2\n", "x: !foo y\n", "a: 1\n---\n", "a: [\n", b"\xff"],
)
def test_every_error_message_starts_with_the_source(parser: str, document: str | bytes) -> None:
    refused(document, source="actions/run.yaml")


def test_wrong_input_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_yaml(42)  # type: ignore[arg-type]


# --- values --------------------------------------------------------------------------------------


def test_timestamps_stay_the_strings_that_were_written(parser: str) -> None:
    document = "released: 2020-01-01\nbuilt: 2001-12-14 21:59:43.10 -5\niso: 2001-12-14t21:59:43.10-05:00\n"
    data = load_yaml(document)
    assert data == {
        "released": "2020-01-01",
        "built": "2001-12-14 21:59:43.10 -5",
        "iso": "2001-12-14t21:59:43.10-05:00",
    }
    json.dumps(data)


def test_timestamp_handling_does_not_change_pyyaml_globally(parser: str) -> None:
    load_yaml("d: 2020-01-01\n")
    assert not isinstance(yaml.safe_load("d: 2020-01-01\n")["d"], str)


def test_unquoted_1_10_is_the_float_1_1_as_yaml_1_1_says(parser: str) -> None:
    """Documented behaviour: the loader does not second-guess YAML's resolution, so an unquoted
    ``version: 1.10`` is the float 1.1 and the manifest schema must refuse non-string versions."""
    assert load_yaml("version: 1.10\n") == {"version": 1.1}
    assert load_yaml("enabled: no\n") == {"enabled": False}
    assert load_yaml("version: 2.1.0\n") == {"version": "2.1.0"}


def test_quoted_version_stays_a_string(parser: str) -> None:
    assert load_yaml('version: "1.10"\n') == {"version": "1.10"}
    assert load_yaml("version: '1.10'\n") == {"version": "1.10"}


def test_plain_equals_sign_is_a_string(parser: str) -> None:
    # yaml.safe_load raises on this (YAML 1.1's "value" type); a plain string is what authors mean.
    assert load_yaml("op: =\n") == {"op": "="}


STACKSTORM_PACK_YAML = """\
---
ref: aws_helpers
name: aws_helpers
description: Helpers for working with AWS from StackStorm workflows
keywords:
  - aws
  - cloud
  - amazon web services
version: "2.1.0"
author: Example Maintainers
email: maintainers@example.com
contributors:
  - "Jane Doe <jane@example.com>"
python_versions:
  - "3"
dependencies:
  - core=3.0.0
stackstorm_version: ">=3.0.0"
"""


def test_realistic_stackstorm_exchange_pack_yaml_loads(parser: str) -> None:
    data = load_yaml(STACKSTORM_PACK_YAML.encode(), source="pack.yaml")
    assert data == {
        "ref": "aws_helpers",
        "name": "aws_helpers",
        "description": "Helpers for working with AWS from StackStorm workflows",
        "keywords": ["aws", "cloud", "amazon web services"],
        "version": "2.1.0",
        "author": "Example Maintainers",
        "email": "maintainers@example.com",
        "contributors": ["Jane Doe <jane@example.com>"],
        "python_versions": ["3"],
        "dependencies": ["core=3.0.0"],
        "stackstorm_version": ">=3.0.0",
    }
    assert json.loads(json.dumps(data)) == data


def test_component_metadata_with_nested_parameters_loads(parser: str) -> None:
    document = textwrap.dedent(
        """\
        name: post_message
        runner_type: python-script
        entry_point: post_message.py
        enabled: true
        parameters:
          channel:
            type: string
            required: true
          timeout:
            type: integer
            default: 30
          tags:
            type: array
            default: []
        """
    )
    assert load_yaml(document, source="actions/post_message.yaml") == {
        "name": "post_message",
        "runner_type": "python-script",
        "entry_point": "post_message.py",
        "enabled": True,
        "parameters": {
            "channel": {"type": "string", "required": True},
            "timeout": {"type": "integer", "default": 30},
            "tags": {"type": "array", "default": []},
        },
    }
