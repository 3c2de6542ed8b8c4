"""requirements.txt is parsed as data, and environment hashes depend on content only."""

from __future__ import annotations

import pytest

from attune_packs.domain.manifest import read_pack
from attune_packs.domain.runtime import (
    nodejs_env_hash,
    pack_requirements,
    parse_requirements,
    python_env_hash,
    runtime_requirements,
)
from attune_packs.errors import ManifestError, RequirementsError
from testkit.pack_archives import in_memory_archive

H1 = "a" * 64
H2 = "b" * 64


def test_pep508_lines_with_markers_hashes_and_continuations() -> None:
    parsed = parse_requirements(
        b"# comment\nsix==1.17.0  # pinned\nrequests>=2 ; python_version >= '3.8'\n"
        b"attrs==23.1.0 \\\n    --hash=sha256:" + H1.encode() + b"\n"
    )
    assert [r.name for r in parsed] == ["six", "requests", "attrs"]
    assert parsed[2].hashes == (f"sha256:{H1}",)


@pytest.mark.parametrize(
    "line",
    [
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


@pytest.mark.parametrize(
    "line",
    [
        "https://evil.example/pkg-1.0-py3-none-any.whl",
        "git+https://evil.example/repo.git#egg=pkg",
        "./vendor/pkg",
        "../outside",
        "/abs/path",
        "file:///etc/passwd",
        "pkg-1.0.tar.gz",
        "local.whl",
        "six==1.17.0 --global-option=--evil",
        "six==1.17.0 --index-url https://evil.example",
        "-i https://evil.example/simple",
        "--editable=git+https://x/y",
        "-c constraints.txt",
        "-r https://evil.example/requirements.txt",
        "-r ../../outside.txt",
        "-r /etc/passwd",
        "-r C:/x.txt",
    ],
)
def test_urls_paths_and_options_are_forbidden_even_with_the_pack_files(line: str) -> None:
    files = {"requirements.txt": line.encode(), "constraints.txt": b"six<2\n"}
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(line.encode(), files=files)
    assert caught.value.error_code == "REQUIREMENTS_FORBIDDEN", caught.value.message
    assert caught.value.details["line"] == 1


def test_includes_are_resolved_inside_the_pack_relative_to_the_including_file() -> None:
    files = {
        "requirements.txt": b"-r reqs/base.txt\nsix==1.17.0\n",
        "reqs/base.txt": b"--requirement=extra.txt\nattrs==23.1.0\n-r ../shared.txt\n",
        "reqs/extra.txt": b"idna==3.7\n",
        "shared.txt": b"SIX == 1.17.0\n",
    }
    parsed = parse_requirements(files["requirements.txt"], files=files)
    assert [(r.line, r.source) for r in parsed] == [
        ("idna==3.7", "reqs/extra.txt"),
        ("attrs==23.1.0", "reqs/base.txt"),
        ("six==1.17.0", "shared.txt"),
    ]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"requirements.txt": b"-r missing.txt\n"}, "no such file"),
        ({"requirements.txt": b"-r a.txt\n", "a.txt": b"-r requirements.txt\n"}, "includes itself"),
        ({"requirements.txt": b"-r requirements.txt\n"}, "includes itself"),
        ({"requirements.txt": b"six==1.0 --hash=sha256:abc\n"}, "malformed --hash"),
        ({"requirements.txt": b"six==1.0 --hash=md5:" + b"a" * 32 + b"\n"}, "malformed --hash"),
        ({"requirements.txt": b"???\n"}, "not a valid requirement"),
    ],
)
def test_broken_includes_and_requirements_are_invalid_and_name_the_file(files: dict, problem: str) -> None:
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(files["requirements.txt"], files=files)
    assert caught.value.error_code == "REQUIREMENTS_INVALID"
    assert problem in caught.value.message


def test_an_include_cannot_be_read_without_the_pack_files() -> None:
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(b"-r other.txt\n")
    assert caught.value.error_code == "REQUIREMENTS_INVALID" and "line 1" in caught.value.message


def test_deep_or_wide_includes_are_bounded() -> None:
    chain = {f"r{i}.txt": f"-r r{i + 1}.txt\n".encode() for i in range(20)}
    chain["r20.txt"] = b"six\n"
    with pytest.raises(RequirementsError, match="nest deeper"):
        parse_requirements(chain["r0.txt"], source="r0.txt", files=chain)
    many = "".join(f"pkg{i}==1.0\n" for i in range(501)).encode()
    with pytest.raises(RequirementsError, match="more than 500"):
        parse_requirements(many)


def test_equal_requirements_give_equal_hashes_whatever_their_spelling_and_file_split() -> None:
    one = parse_requirements(
        b"Requests[socks,Security] >= 2.0 , <3 ; python_version>='3.8'\n"
        b"attrs==23.1.0 --hash=sha256:" + H2.encode() + b" --hash=sha256:" + H1.encode() + b"\n"
        b"six==1.17.0\nsix==1.17.0\n"
    )
    files = {
        "requirements.txt": b"-r more.txt\nSix==1.17.0\n",
        "more.txt": b'requests[security,socks]<3,>=2.0; python_version >= "3.8"\n'
        b"attrs==23.1.0 \\\n  --hash=sha256:" + H1.encode() + b" \\\n  --hash=sha256:" + H2.encode() + b"\n",
    }
    two = parse_requirements(files["requirements.txt"], files=files)
    assert python_env_hash(one, python_version="3.12", architecture="arm64") == python_env_hash(
        two, python_version="3.12", architecture="arm64"
    )
    three = parse_requirements(b"requests[security,socks]<3,>=2.0\nattrs==23.1.0\nsix==1.17.0\n")
    assert python_env_hash(three, python_version="3.12", architecture="arm64") != python_env_hash(
        one, python_version="3.12", architecture="arm64"
    )


def pack_with(files: dict[str, str]) -> object:
    return read_pack(in_memory_archive(files))


def test_runtime_requirements_of_a_python_pack() -> None:
    pack = pack_with(
        {
            "pack.yaml": 'name: py\nversion: "1.0.0"\npython_versions: ["3"]\n',
            "requirements.txt": "-r requirements-base.txt\nsix==1.17.0 --hash=sha256:" + H1 + "\n",
            "requirements-base.txt": "attrs==23.1.0 --hash=sha256:" + H2 + "\n",
        }
    )
    runtime = runtime_requirements(pack)
    assert runtime.nodejs is None
    assert runtime.python is not None
    assert runtime.python.version == "3"
    assert runtime.python.requirements_file == "requirements.txt"
    assert runtime.python.packages == ["attrs==23.1.0", "six==1.17.0"]
    assert runtime.python.included_files == ["requirements-base.txt"]
    assert runtime.python.hashed


def test_runtime_requirements_refuse_a_forbidden_line_in_an_included_file() -> None:
    pack = pack_with(
        {
            "pack.yaml": 'ref: py\nversion: "1.0.0"\n',
            "requirements.txt": "-r more.txt\n",
            "more.txt": "six\n--extra-index-url https://evil.example/simple\n",
        }
    )
    with pytest.raises(RequirementsError) as caught:
        runtime_requirements(pack)
    assert caught.value.error_code == "REQUIREMENTS_FORBIDDEN"
    assert "more.txt line 2" in caught.value.message


def test_runtime_requirements_of_a_node_pack_lockfile_presence_and_version() -> None:
    base = {
        "pack.yaml": 'ref: js\nversion: "1.0.0"\n',
        "package.json": '{"name": "js", "engines": {"node": ">=18"}, "dependencies": {"left-pad": "1.3.0"}}',
    }
    without = runtime_requirements(pack_with(base))
    assert without.python is None and without.nodejs is not None
    assert without.nodejs.version == ">=18" and without.nodejs.lockfile is None
    assert without.nodejs.warnings and "lockfile" in without.nodejs.warnings[0]
    locked = runtime_requirements(pack_with({**base, "package-lock.json": '{"lockfileVersion": 3, "packages": {}}'}))
    assert locked.nodejs is not None and locked.nodejs.lockfile == "package-lock.json" and not locked.nodejs.warnings
    declared = runtime_requirements(
        pack_with({**base, "pack.yaml": 'ref: js\nversion: "1.0.0"\nruntime_deps: {nodejs: "20"}\n'})
    )
    assert declared.nodejs is not None and declared.nodejs.version == "20"


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("package-lock.json", "{not json", "NPM_LOCK_INVALID"),
        ("package-lock.json", '{"packages": {}}', "NPM_LOCK_INVALID"),
        ("npm-shrinkwrap.json", "[]", "NPM_LOCK_INVALID"),
        ("package.json", "[1, 2]", "NPM_PACKAGE_INVALID"),
    ],
)
def test_invalid_npm_files_are_refused(name: str, content: str, code: str) -> None:
    files = {"pack.yaml": 'ref: js\nversion: "1.0.0"\n', "package.json": '{"name": "js"}', name: content}
    with pytest.raises(RequirementsError) as caught:
        runtime_requirements(pack_with(files))
    assert caught.value.error_code == code


META_FORMS = [
    '  python_dependencies: ["Six==1.17.0", "requests>=2.28"]\n',
    '  python_dependencies:\n    runtime: python\n    dependencies: ["requests>=2.28", "six==1.17.0"]\n',
    '  python_dependencies:\n    requirements_file_content: "requests >= 2.28\\nsix==1.17.0\\n"\n',
]


@pytest.mark.parametrize("meta", META_FORMS)
def test_meta_python_dependencies_is_a_requirement_source_with_the_same_hash_as_requirements_txt(meta: str) -> None:
    declared = pack_with({"pack.yaml": f'ref: py\nversion: "1.0.0"\nmeta:\n{meta}'})
    from_file = pack_with(
        {"pack.yaml": 'ref: py\nversion: "1.0.0"\n', "requirements.txt": "requests>=2.28\nsix==1.17.0\n"}
    )
    runtime = runtime_requirements(declared)
    assert runtime.python is not None
    assert sorted(runtime.python.packages) == ["requests>=2.28", "six==1.17.0"]
    assert runtime.python.requirements_file == "pack.yaml meta.python_dependencies"

    def env_hash(pack: object) -> str:
        found = pack_requirements(pack)
        assert found is not None
        return python_env_hash(found.requirements, python_version="3.12", architecture="arm64")

    assert env_hash(declared) == env_hash(from_file), "one environment whichever way the pack declares them"


def test_meta_python_dependencies_merge_with_requirements_txt() -> None:
    pack = pack_with(
        {
            "pack.yaml": 'ref: py\nversion: "1.0.0"\nmeta:\n  python_dependencies: ["six==1.17.0", "attrs==23.1.0"]\n',
            "requirements.txt": "six==1.17.0\nrequests>=2\n",
        }
    )
    found = pack_requirements(pack)
    assert found is not None and sorted(r.line for r in found.requirements) == [
        "attrs==23.1.0",
        "requests>=2",
        "six==1.17.0",
    ]
    assert found.sources == ("requirements.txt", "pack.yaml meta.python_dependencies")


@pytest.mark.parametrize(
    ("dependencies", "code"),
    [
        ('["six", "--index-url https://evil.example/simple"]', "REQUIREMENTS_FORBIDDEN"),
        ('["pkg @ https://evil.example/pkg.whl"]', "REQUIREMENTS_FORBIDDEN"),
        ('["-r /etc/passwd"]', "REQUIREMENTS_FORBIDDEN"),
        ('["not a requirement!"]', "REQUIREMENTS_INVALID"),
    ],
)
def test_meta_python_dependencies_are_checked_like_requirements_txt(dependencies: str, code: str) -> None:
    pack = pack_with({"pack.yaml": f'ref: py\nversion: "1.0.0"\nmeta:\n  python_dependencies: {dependencies}\n'})
    with pytest.raises(RequirementsError) as caught:
        runtime_requirements(pack)
    assert caught.value.error_code == code
    assert "meta.python_dependencies" in caught.value.message


@pytest.mark.parametrize("dependencies", ['"six==1.17.0"', "[1, 2]"])
def test_meta_python_dependencies_of_the_wrong_type_is_a_manifest_error_with_its_field_path(dependencies: str) -> None:
    with pytest.raises(ManifestError) as caught:
        pack_with({"pack.yaml": f'ref: py\nversion: "1.0.0"\nmeta:\n  python_dependencies: {dependencies}\n'})
    assert "meta.python_dependencies" in caught.value.message
