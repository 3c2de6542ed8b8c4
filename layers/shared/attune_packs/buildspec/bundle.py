"""The buildspec the builds run, with the build tools inside it.

``build_env.yml`` is sent as CodeBuild's ``buildspecOverride`` without its YAML comment lines, its
``@@BUILD_TOOLS@@`` marker replaced by the :mod:`.tools` package as a zip application (sources
without docstrings, comments or annotations, stored, then the whole zip xz-compressed and
base85-encoded: CodeBuild caps an inline buildspec at 25,600 characters). The buildspec decodes it
with ``python3`` to ``$TOOLS`` and runs ``python3 "$TOOLS" <command>``.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import lzma
import re
import zipfile
from functools import cache
from importlib import resources

from attune_packs.domain.runtime import BUILD_RECIPE_VERSION
from attune_packs.errors import ConfigurationError

MAX_BUILDSPEC_CHARS = 25_600  # CodeBuild's limit for an inline buildspec
TOOLS_PACKAGE = "attune_build_tools"  # the package's name inside the zip application
_TOOLS_MARKER = "@@BUILD_TOOLS@@"
_YAML_COMMENT = re.compile(r"^ {0,6}#")  # YAML-level comments; command blocks are indented 8+
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ENTRY = f"import sys\nfrom {TOOLS_PACKAGE}.cli import main\nsys.exit(main())\n"


class _Unannotated(ast.NodeTransformer):
    """Drops annotations (the tools postpone them, ``from __future__ import annotations``) and the
    ``if TYPE_CHECKING:`` imports only they use."""

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        self.generic_visit(node)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        if node.module == "typing" and [alias.name for alias in node.names] == ["TYPE_CHECKING"]:
            return None  # its only use, the ``if TYPE_CHECKING:`` block, goes too
        return None if node.module == "__future__" else node  # nothing is left for it to postpone

    def visit_If(self, node: ast.If) -> ast.AST | None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" and not node.orelse:
            return None  # imports only the (dropped) annotations use
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def minified_python(source: str) -> str:
    """``source`` without docstrings, comments and annotations (same behaviour, fewer characters)."""
    tree = _Unannotated().visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


@cache
def tools_application() -> bytes:
    """The :mod:`.tools` package as a zip application (``python3 tools.pyz <command>``), byte for
    byte the same on every call and machine."""
    folder = resources.files("attune_packs.buildspec.tools")
    members = {"__main__.py": _ENTRY}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py") and entry.name != "__main__.py":
            members[f"{TOOLS_PACKAGE}/{entry.name}"] = minified_python(entry.read_text())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, text in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


@cache
def buildspec_text() -> str:
    """The buildspec the builds run: ``build_env.yml`` without its YAML comment lines (lines inside
    command blocks, such as a heredoc's ``#!``, are indented deeper and stay), with the tools
    embedded."""
    lines = resources.files("attune_packs.buildspec").joinpath("build_env.yml").read_text().splitlines(keepends=True)
    spec = "".join(line for line in lines if not _YAML_COMMENT.match(line))
    blob = base64.b85encode(lzma.compress(tools_application(), preset=9 | lzma.PRESET_EXTREME)).decode()
    text = spec.replace(_TOOLS_MARKER, blob)
    if len(text) > MAX_BUILDSPEC_CHARS:
        raise ConfigurationError(f"the buildspec is {len(text)} characters; CodeBuild accepts {MAX_BUILDSPEC_CHARS}")
    return text


@cache
def recipe_digest() -> str:
    """Identifies what a build does (recipe version, buildspec and tools): part of the test key."""
    return hashlib.sha256(f"{BUILD_RECIPE_VERSION}\n{buildspec_text()}".encode()).hexdigest()
