"""pack.yaml in Attune's and StackStorm Exchange's forms, and component metadata."""

from __future__ import annotations

import pytest

from attune_packs.archive import PackArchive
from attune_packs.errors import ManifestError
from attune_packs.pack import parse_manifest, read_pack


def archive_of(files: dict[str, str]) -> PackArchive:
    encoded = {k: v.encode() for k, v in files.items()}
    return PackArchive(
        format="tar.gz",
        root="",
        files=encoded,
        file_list=sorted(files),
        total_bytes=0,
        file_count=len(files),
        compressed_bytes=0,
    )


def test_attune_form_with_dependency_mapping_and_runtime_deps() -> None:
    manifest = parse_manifest(
        b'ref: http_tools\nversion: "1.2.0"\ndependencies:\n  core_utils: ">=1.0.0,<2.0.0"\n'
        b'runtime_deps:\n  python: ">=3.10"\n'
    )
    assert manifest.ref == "http_tools"
    assert manifest.name == "http_tools"
    assert manifest.dependencies == {"core_utils": ">=1.0.0,<2.0.0"}
    assert manifest.python_version == ">=3.10"


def test_stackstorm_form_takes_ref_from_name_and_dependency_strings() -> None:
    manifest = parse_manifest(
        b"name: slack\nversion: 2.1.0\ndescription: Slack\npython_versions: ['3']\n"
        b"stackstorm_version: '>=3.0.0'\ndependencies:\n  - core=3.0.0\n  - http_tools\n"
        b"keywords: [chat]\n"
    )
    assert manifest.ref == "slack"
    assert manifest.dependencies == {"core": "=3.0.0", "http_tools": "*"}
    assert manifest.platform_version == ">=3.0.0"
    assert manifest.python_versions == ["3"]


def test_unknown_fields_are_kept() -> None:
    manifest = parse_manifest(b'ref: demo\nversion: "1.0.0"\ncontributors: [ada]\n')
    assert manifest.model_extra == {"contributors": ["ada"]}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b'ref: Bad.Ref\nversion: "1.0.0"\n', "PACK_REF_INVALID"),
        (b'ref: ../etc\nversion: "1.0.0"\n', "PACK_REF_INVALID"),
        (b'ref: demo\nversion: "1.0"\n', "PACK_VERSION_INVALID"),
        (b'ref: demo\nversion: "v1.0.0"\n', "PACK_VERSION_INVALID"),
        (b"ref: demo\nversion: 1.10\n", "PACK_VERSION_INVALID"),
        (b'version: "1.0.0"\n', "MANIFEST_INVALID"),
        (b"- just\n- a list\n", "MANIFEST_INVALID"),
    ],
)
def test_invalid_manifests_name_the_problem(text: bytes, code: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    assert caught.value.error_code == code
    assert "pack.yaml" in caught.value.message


def test_every_problem_is_reported_at_once_with_its_field() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(b'ref: "Not Valid"\nversion: "1.0"\nkeywords: 3\n')
    fields = {p["field"] for p in caught.value.details}
    assert {"ref", "version", "keywords"} <= fields


def test_components_are_read_in_both_forms() -> None:
    pack = read_pack(
        archive_of(
            {
                "pack.yaml": 'ref: demo\nversion: "1.0.0"\n',
                "actions/a.yaml": "ref: demo.a\nrunner_type: python-script\nentry_point: a.py\n",
                "actions/a.py": "",
                "actions/b.yaml": "name: b\npack: demo\nrunner_type: local-shell-cmd\nentry_point: b.sh\n",
                "actions/b.sh": "",
                "sensors/s.yaml": "name: s\nentry_point: s.py\ntrigger_types: [demo.t]\n",
                "sensors/s.py": "",
                "triggers/t.yaml": "name: t\n",
                "rules/r.yaml": "name: r\ntrigger_ref: demo.t\naction_ref: demo.a\n",
                "workflows/w.yaml": "name: w\ntasks: []\n",
                "policies/p.yaml": "name: p\nresource_ref: demo.a\n",
            }
        )
    )
    assert sorted((c.type, c.ref) for c in pack.components) == [
        ("actions", "demo.a"),
        ("actions", "demo.b"),
        ("policies", "demo.p"),
        ("rules", "demo.r"),
        ("sensors", "demo.s"),
        ("triggers", "demo.t"),
        ("workflows", "demo.w"),
    ]


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ("name: a\nrunner_type: python-script\nentry_point: ../../etc/passwd\n", "leaves the pack"),
        ("name: a\nrunner_type: python-script\nentry_point: /etc/passwd\n", "relative path"),
        ("name: a\nrunner_type: python-script\nentry_point: missing.py\n", "does not exist"),
        ("name: a\nentry_point: a.py\n", "runner_type"),
        ("name: a\npack: other\nrunner_type: python-script\n", "belongs to pack"),
        ("name: 'bad name!'\nrunner_type: x\n", "valid component name"),
        ("name: a\nrunner_type: x\nparameters: [1, 2]\n", "parameters"),
    ],
)
def test_malformed_component_fails_the_pack_naming_file_and_field(meta: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        read_pack(
            archive_of({"pack.yaml": 'ref: demo\nversion: "1.0.0"\n', "actions/a.yaml": meta, "actions/a.py": ""})
        )
    assert "actions/a.yaml" in caught.value.message
    assert problem in caught.value.message


def test_skip_validation_skips_strict_checks_but_not_path_safety() -> None:
    relaxed = {"pack.yaml": 'ref: demo\nversion: "1.0.0"\n', "actions/a.yaml": "name: a\nentry_point: missing.py\n"}
    assert read_pack(archive_of(relaxed), strict=False).components[0].name == "a"
    unsafe = {"pack.yaml": 'ref: demo\nversion: "1.0.0"\n', "actions/a.yaml": "name: a\nentry_point: ../../x\n"}
    with pytest.raises(ManifestError):
        read_pack(archive_of(unsafe), strict=False)
