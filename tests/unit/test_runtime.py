"""requirements.txt is parsed as data, and environment hashes depend on content only."""

from __future__ import annotations

import pytest

from attune_packs.errors import RequirementsError
from attune_packs.runtime import nodejs_env_hash, parse_requirements, python_env_hash


def test_pep508_lines_with_markers_hashes_and_continuations() -> None:
    parsed = parse_requirements(
        b"# comment\nsix==1.17.0  # pinned\nrequests>=2 ; python_version >= '3.8'\n"
        b"attrs==23.1.0 \\\n    --hash=sha256:abc\n"
    )
    assert [r.name for r in parsed] == ["six", "requests", "attrs"]
    assert parsed[2].hashes == ("sha256:abc",)


@pytest.mark.parametrize(
    "line",
    [
        "-r other.txt",
        "--index-url https://evil.example/simple",
        "-e .",
        "--extra-index-url x",
        "pkg @ https://evil.example/pkg.whl",
        "-f ./wheels",
        "--trusted-host evil.example",
    ],
)
def test_command_lines_are_refused_before_any_build(line: str) -> None:
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(line.encode())
    assert caught.value.error_code == "REQUIREMENTS_FORBIDDEN"
    assert "line 1" in caught.value.message


def test_invalid_requirement_names_its_line() -> None:
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(b"six==1.0\n???\n")
    assert caught.value.error_code == "REQUIREMENTS_INVALID"
    assert "line 2" in caught.value.message


def test_equal_requirements_give_equal_hashes_whatever_their_order_and_comments() -> None:
    a = parse_requirements(b"six==1.17.0\nattrs==23.1.0\n")
    b = parse_requirements(b"# same set\nattrs==23.1.0\n\nsix==1.17.0  # pinned\n")
    assert python_env_hash(a, python_version="3.12", architecture="arm64") == python_env_hash(
        b, python_version="3.12", architecture="arm64"
    )


def test_the_hash_changes_with_python_version_architecture_and_requirements() -> None:
    reqs = parse_requirements(b"six==1.17.0\n")
    base = python_env_hash(reqs, python_version="3.12", architecture="arm64")
    assert base != python_env_hash(reqs, python_version="3.13", architecture="arm64")
    assert base != python_env_hash(reqs, python_version="3.12", architecture="x86_64")
    assert base != python_env_hash(parse_requirements(b"six==1.16.0\n"), python_version="3.12", architecture="arm64")


def test_node_hash_ignores_fields_that_do_not_change_node_modules() -> None:
    one = b'{"name": "a", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}}'
    two = b'{"name": "b", "version": "9.9.9", "description": "x", "dependencies": {"left-pad": "1.3.0"}}'
    assert nodejs_env_hash(one, None, nodejs_version="20", architecture="arm64") == nodejs_env_hash(
        two, None, nodejs_version="20", architecture="arm64"
    )
    assert nodejs_env_hash(one, b"{}", nodejs_version="20", architecture="arm64") != nodejs_env_hash(
        one, None, nodejs_version="20", architecture="arm64"
    )
