"""pack.yaml in Attune's and StackStorm Exchange's forms, and component metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_packs.domain.archive import PackArchive
from attune_packs.domain.manifest import parse_manifest, read_pack
from attune_packs.errors import ManifestError
from testkit.pack_archives import in_memory_archive


def archive_of(files: dict[str, str]) -> PackArchive:
    return in_memory_archive(files)


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


# --- every problem at once, with its field path --------------------------------------------------

EXCHANGE = Path(__file__).resolve().parents[1] / "fixtures" / "exchange"


def problems_of(text: bytes) -> tuple[str, dict[str, str]]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    return caught.value.error_code, {p["field"]: p["problem"] for p in caught.value.details}


def test_every_kind_of_problem_is_reported_in_one_error_with_paths_below_the_field() -> None:
    code, problems = problems_of(
        b'ref: "Not Valid"\n'
        b"version: 1.10\n"
        b"keywords: 3\n"
        b"description: [not, text]\n"
        b"dependencies:\n  - core=3.0.0\n  - 42\n  - Bad=1.0.0\n  - x>>1\n  - core\n"
        b'python_versions: [2, 3.10, "3", "three"]\n'
        b'runtime_deps: {python: 3.10, cobol: "3"}\n'
        b'stackstorm_version: ">>3"\n'
    )
    assert code == "PACK_REF_INVALID"
    assert set(problems) == {
        "ref",
        "version",
        "keywords",
        "description",
        "dependencies.1",
        "dependencies.2",
        "dependencies.3",
        "dependencies.4",
        "python_versions.1",
        "python_versions.3",
        "runtime_deps.python",
        "runtime_deps.cobol",
        "stackstorm_version",
    }
    assert "listed twice" in problems["dependencies.4"] and "dependencies.0" in problems["dependencies.4"]
    assert "unknown runtime 'cobol'" in problems["runtime_deps.cobol"]


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        (b"ref: demo\nversion: 1.10\n", "version", 'version: "1.10.0"'),
        (b"ref: demo\nversion: 2\n", "version", "quote it"),
        (b'ref: demo\nversion: "1.0.0"\npython_versions: [3.10]\n', "python_versions.0", "quote it"),
        (b'ref: demo\nversion: "1.0.0"\nruntime_deps: {python: 3.10}\n', "runtime_deps.python", "quote it"),
        (b'ref: demo\nversion: "1.0.0"\ndependencies: {core: 1.10}\n', "dependencies.core", "quote it"),
        (b'ref: demo\nversion: "1.0.0"\nstackstorm_version: 3.1\n', "stackstorm_version", "quote it"),
        (b'ref: demo\nversion: "1.0.0"\nattune_version: no\n', "attune_version", "boolean"),
    ],
)
def test_yaml_numbers_where_text_is_meant_are_refused_with_a_hint_to_quote(text: bytes, field: str, hint: str) -> None:
    _, problems = problems_of(text)
    assert hint in problems[field]
    assert "1.1" in problems[field] or field in ("attune_version",) or "2" in problems[field]


def test_a_bad_version_alone_is_pack_version_invalid_and_missing_fields_say_what_to_write() -> None:
    assert problems_of(b'ref: demo\nversion: "01.0.0"\n')[0] == "PACK_VERSION_INVALID"
    code, problems = problems_of(b"description: nothing else\n")
    assert code == "MANIFEST_INVALID"
    assert set(problems) == {"ref", "name", "version"}
    assert "name" in problems["ref"]


def test_a_name_used_as_ref_says_so_when_it_is_not_a_safe_ref() -> None:
    code, problems = problems_of(b'name: "My Pack"\nversion: "1.0.0"\n')
    assert code == "PACK_REF_INVALID"
    assert "uses its name as ref" in problems["ref"]


@pytest.mark.parametrize("ref", ["-dash", "a" * 65, "UPPER", "dots.not.allowed", "sp ace"])
def test_unsafe_refs_are_refused(ref: str) -> None:
    code, problems = problems_of(f'ref: "{ref}"\nversion: "1.0.0"\n'.encode())
    assert code == "PACK_REF_INVALID" and "ref" in problems


@pytest.mark.parametrize("ref", ["attune", "st2", "system", "_global", "packs", "linux", "chatops", "default"])
def test_reserved_refs_are_refused_with_the_reason(ref: str) -> None:
    code, problems = problems_of(f'ref: "{ref}"\nversion: "1.0.0"\nsystem: true\n'.encode())
    assert code == "PACK_REF_RESERVED"
    assert "reserved: " in problems["ref"]


def test_python_and_platform_fields_are_normalised() -> None:
    stackstorm = parse_manifest(b'name: x\nversion: "1.0.0"\npython_versions: ["2", 3]\nstackstorm_version: ">=3"\n')
    assert stackstorm.python_versions == ["2", "3"]
    assert stackstorm.python_constraint == "2 || 3"
    assert stackstorm.platform_version == ">=3"
    attune = parse_manifest(
        b'ref: x\nversion: "1.0.0"\nattune_version: "^3.9"\nruntime_deps: {python: "~=3.10", node: 20}\n'
    )
    assert attune.platform_version == "^3.9"
    assert attune.python_constraint == "~=3.10"
    assert attune.nodejs_version == "20"
    assert attune.runtime_deps == {"python": "~=3.10", "nodejs": "20"}


def test_dependency_forms_are_normalised_to_ref_and_constraint() -> None:
    manifest = parse_manifest(
        b'name: x\nversion: "1.0.0"\ndependencies:\n'
        b"  - core\n  - slack=2.1.0\n  - jira>=2,<3\n  - aws@^1.2\n"
        b"  - https://github.com/StackStorm-Exchange/stackstorm-email.git=v1.1.0\n"
        b"  - {ref: github, version: '~2.1'}\n"
    )
    assert manifest.dependencies == {
        "core": "*",
        "slack": "=2.1.0",
        "jira": ">=2.0.0,<3.0.0",
        "aws": ">=1.2.0,<2.0.0",
        "email": "=1.1.0",
        "github": ">=2.1.0,<2.2.0",
    }


def test_too_many_dependencies_is_a_dependency_limit() -> None:
    many = "".join(f"  - dep{i}\n" for i in range(201))
    code, problems = problems_of(f'ref: x\nversion: "1.0.0"\ndependencies:\n{many}'.encode())
    assert code == "DEPENDENCY_LIMIT"
    assert "200" in problems["dependencies"]


# StackStorm bundles these with the platform; here their refs are reserved (core: for Attune's system pack).
BUNDLED_WITH_STACKSTORM = {"core", "linux", "chatops"}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXCHANGE.glob("*/pack.yaml") if p.parent.name not in BUNDLED_WITH_STACKSTORM),
    ids=lambda p: p.parent.name,
)
def test_stackstorm_exchange_pack_yaml_files_parse(path: Path) -> None:
    manifest = parse_manifest(path.read_bytes(), source=str(path))
    assert manifest.ref == path.parent.name
    assert manifest.semver
    assert manifest.description


def test_there_are_at_least_six_exchange_fixtures_and_their_details_survive() -> None:
    assert len(list(EXCHANGE.glob("*/pack.yaml"))) >= 6
    napalm = parse_manifest((EXCHANGE / "napalm" / "pack.yaml").read_bytes())
    assert napalm.dependencies == {"networking_utils": "*", "core": "=3.8.1", "email": "=1.1.0"}
    assert napalm.platform_version == ">=2.9.0"
    aws = parse_manifest((EXCHANGE / "aws" / "pack.yaml").read_bytes())
    assert aws.model_extra is not None and len(aws.model_extra["contributors"]) == 2
    assert "CloudFormation" in aws.keywords
    jira = parse_manifest((EXCHANGE / "jira" / "pack.yaml").read_bytes())
    assert jira.python_constraint


@pytest.mark.parametrize("name", sorted(BUNDLED_WITH_STACKSTORM))
def test_packs_stackstorm_bundles_with_its_platform_are_refused_as_reserved(name: str) -> None:
    code, problems = problems_of((EXCHANGE / name / "pack.yaml").read_bytes())
    assert code == "PACK_REF_RESERVED"
    assert "reserved" in problems["ref"]


# --- Attune's whole pack.yaml ---------------------------------------------------------------------

ATTUNE = Path(__file__).resolve().parents[1] / "fixtures" / "attune"


def test_runtime_deps_as_attune_writes_them_a_list_of_runtime_names() -> None:
    manifest = parse_manifest(b'ref: x\nversion: "1.0.0"\nruntime_deps: [shell, native, python3, nodejs]\n')
    assert manifest.runtime_deps == {"shell": "*", "native": "*", "python": "*", "nodejs": "*"}
    assert manifest.runtimes == ["native", "nodejs", "python", "shell"]
    assert manifest.python_version is None and manifest.nodejs_version is None, "a bare name constrains no version"


def test_runtime_deps_list_names_every_unknown_runtime_with_the_known_ones() -> None:
    code, problems = problems_of(b'ref: x\nversion: "1.0.0"\nruntime_deps: [python3, cobol, 7]\n')
    assert code == "MANIFEST_INVALID"
    assert set(problems) == {"runtime_deps.2"}
    code, problems = problems_of(b'ref: x\nversion: "1.0.0"\nruntime_deps: [python3, cobol]\n')
    assert "unknown runtime 'cobol'" in problems["runtime_deps.cobol"]
    assert "python3" in problems["runtime_deps.cobol"] and "shell" in problems["runtime_deps.cobol"]


def test_the_same_runtime_under_two_names_is_refused() -> None:
    _, problems = problems_of(b'ref: x\nversion: "1.0.0"\nruntime_deps: [python, python3]\n')
    assert "declared twice" in problems["runtime_deps.python3"]


def test_every_attune_field_is_kept() -> None:
    manifest = parse_manifest((ATTUNE / "core_like" / "pack.yaml").read_bytes())
    assert (manifest.ref, manifest.label) == ("core", "Core Pack (fixture)")
    assert (manifest.system, manifest.enabled) == (True, True)
    assert manifest.email == "core-fixture@example.org"
    assert manifest.tags == ["core", "system", "timers"]
    assert manifest.meta.category == "system" and manifest.meta.keywords == ["core", "timers", "shell"]
    assert manifest.meta.documentation_url == "https://docs.example.org/packs/core"
    assert manifest.meta.repository_url == "https://git.example.org/attune/core"
    assert manifest.config == {"max_action_timeout": 300, "enable_debug_logging": False}
    stored = manifest.stored_fields()
    for key in ("system", "enabled", "conf_schema", "config", "meta", "tags", "email", "runtime_deps", "testing"):
        assert key in stored, key
    assert stored["config_schema"]["properties"]["max_action_timeout"]["maximum"] == 3600
    assert stored["testing"]["runners"]["shell"]["entry_point"] == "tests/run_tests.sh"


def test_meta_python_dependencies_is_a_typed_requirement_list() -> None:
    manifest = parse_manifest((ATTUNE / "test_pack" / "pack.yaml").read_bytes())
    assert manifest.python_dependencies == ["six>=1.16"]
    assert manifest.runtimes == ["python"]
    # Entries must be text; what a line may say is checked like requirements.txt (test_runtime.py).
    _, problems = problems_of(
        b'ref: x\nversion: "1.0.0"\nmeta:\n  python_dependencies: ["requests>=2", "--index-url https://evil", 3]\n'
    )
    assert set(problems) == {"meta.python_dependencies.2"}


def test_meta_python_dependencies_in_attunes_mapping_form() -> None:
    listed = parse_manifest(
        b'ref: x\nversion: "1.0.0"\nmeta:\n  python_dependencies:\n    runtime: python\n'
        b'    dependencies: ["requests==2.31.0", "six"]\n    min_version: "3.8"\n'
    )
    assert listed.python_dependencies == ["requests==2.31.0", "six"]
    content = parse_manifest(
        b'ref: x\nversion: "1.0.0"\nmeta:\n  python_dependencies:\n'
        b'    requirements_file_content: "requests==2.31.0\\n\\nsix\\n"\n'
    )
    assert content.python_dependencies == ["requests==2.31.0", "six"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (b"system: yes please\n", "system"),
        (b"enabled: 1\n", "enabled"),
        (b"tags: core\n", "tags"),
        (b"meta: [a]\n", "meta"),
        (b"meta: {documentation_url: ftp://x}\n", "meta.documentation_url"),
        (b"conf_schema: {a: {type: text}}\n", "conf_schema.a.type"),
        (b"conf_schema: {type: object, properties: {a: 3}}\n", "conf_schema.properties.a"),
        (b"conf_schema: {a: {type: string, pattern: '('}}\n", "conf_schema.a.pattern"),
    ],
)
def test_a_wrong_attune_field_is_manifest_invalid_with_its_path(text: bytes, field: str) -> None:
    code, problems = problems_of(b'ref: x\nversion: "1.0.0"\n' + text)
    assert code == "MANIFEST_INVALID"
    assert field in problems, problems


def test_config_is_validated_against_conf_schema_in_either_form() -> None:
    flat = (
        b"conf_schema:\n  timeout: {type: integer, minimum: 1, required: true}\n  mode: {type: string, enum: [a, b]}\n"
    )
    obj = (
        b"conf_schema:\n  type: object\n  properties:\n    timeout: {type: integer, minimum: 1}\n"
        b"    mode: {type: string, enum: [a, b]}\n  required: [timeout]\n"
    )
    for schema in (flat, obj):
        ok = parse_manifest(b'ref: x\nversion: "1.0.0"\n' + schema + b"config: {timeout: 5, mode: a}\n")
        assert ok.config_schema is not None and ok.config_schema["required"] == ["timeout"]
        code, problems = problems_of(b'ref: x\nversion: "1.0.0"\n' + schema + b"config: {timeout: 0, mode: c}\n")
        assert code == "MANIFEST_INVALID"
        assert set(problems) == {"config.timeout", "config.mode"}
        _, problems = problems_of(b'ref: x\nversion: "1.0.0"\n' + schema + b"config: {mode: a}\n")
        assert problems == {"config.timeout": "is required"}


def test_config_values_are_checked_by_type_nested_and_in_arrays() -> None:
    schema = (
        b"conf_schema:\n  type: object\n  additionalProperties: false\n  properties:\n"
        b"    hosts: {type: array, items: {type: string, minLength: 2}}\n"
        b"    limits: {type: object, properties: {cpu: {type: number, maximum: 4}}}\n"
        b"    debug: {type: boolean}\n"
    )
    _, problems = problems_of(
        b'ref: x\nversion: "1.0.0"\n' + schema + b"config: {hosts: [ab, c], limits: {cpu: 8}, debug: 1, extra: 2}\n"
    )
    assert set(problems) == {"config.hosts.1", "config.limits.cpu", "config.debug", "config.extra"}


def test_config_schema_yaml_becomes_the_conf_schema_and_checks_config() -> None:
    files = {
        "pack.yaml": "name: demo\nversion: 1.0.0\nconfig: {region: us-east-1}\n",
        "config.schema.yaml": "---\n  region: {type: string, required: true}\n  token: {type: string, secret: true}\n",
        "icon.png": "\x89PNG",
    }
    pack = read_pack(archive_of(files))
    assert pack.manifest.conf_schema_file == "config.schema.yaml"
    assert pack.manifest.config_schema == {
        "type": "object",
        "properties": {"region": {"type": "string"}, "token": {"type": "string", "secret": True}},
        "required": ["region"],
    }
    assert pack.components == [] and pack.problems == [], "icon.png is ignored quietly"
    with pytest.raises(ManifestError) as caught:
        read_pack(archive_of({**files, "pack.yaml": "name: demo\nversion: 1.0.0\nconfig: {region: 3}\n"}))
    assert caught.value.details[0]["field"] == "config.region"
    with pytest.raises(ManifestError) as caught:
        read_pack(archive_of({**files, "pack.yaml": "name: demo\nversion: 1.0.0\nconf_schema: {a: {type: string}}\n"}))
    assert "given twice" in caught.value.message


def test_core_is_reserved_for_the_system_pack() -> None:
    code, problems = problems_of(b'ref: core\nversion: "1.0.0"\n')
    assert code == "PACK_REF_RESERVED" and "system: true" in problems["ref"]
    assert parse_manifest(b'ref: core\nversion: "1.0.0"\nsystem: true\n').system is True
    assert parse_manifest(b'name: x\nversion: "1.0.0"\ndependencies: [core]\n').dependencies == {"core": "*"}


def test_only_the_system_pack_may_define_a_builtin_ref() -> None:
    # The system pack may: Attune's core pack defines core.echo, core.sleep ...
    pack = read_pack(
        archive_of(
            {
                "pack.yaml": 'ref: core\nversion: "1.0.0"\nsystem: true\n',
                "actions/local.yaml": "name: local\nrunner_type: local-shell-cmd\nentry_point: ''\n",
            }
        )
    )
    assert [c.ref for c in pack.components] == ["core.local"]
    # Any other pack cannot: a component's ref is always its own pack's
    squatter = {
        "pack.yaml": 'ref: demo\nversion: "1.0.0"\nsystem: true\n',
        "actions/local.yaml": "ref: core.local\nrunner_type: local-shell-cmd\nentry_point: ''\n",
    }
    with pytest.raises(ManifestError) as caught:
        read_pack(archive_of(squatter))
    assert "belongs to pack 'core'" in caught.value.message
    relaxed = read_pack(archive_of(squatter), strict=False)
    assert [c.ref for c in relaxed.components] == ["demo.core.local"]


@pytest.mark.parametrize(("first", "second"), [("run", "Run"), ("STRASSE", "strasse"), ("a.B-c", "A.b-C")])
def test_component_names_equal_after_case_folding_collide(first: str, second: str) -> None:
    files = {
        "pack.yaml": 'ref: demo\nversion: "1.0.0"\n',
        "actions/one.yaml": f"name: {first}\nrunner_type: local-shell-cmd\nentry_point: ''\n",
        "actions/two.yaml": f"name: {second}\nrunner_type: local-shell-cmd\nentry_point: ''\n",
    }
    with pytest.raises(ManifestError) as caught:
        read_pack(archive_of(files))
    assert caught.value.error_code == "COMPONENT_DUPLICATE"
    assert caught.value.details[0]["file"] == "actions/two.yaml"


def test_name_key_compares_as_people_and_file_systems_do() -> None:
    from attune_packs.domain.components import name_key

    assert name_key("caf\u00e9") == name_key("cafe\u0301") == name_key("CAF\u00c9")
    assert name_key("Stra\u00dfe") == name_key("STRASSE")
    assert name_key("run") != name_key("run2")


def test_the_same_name_in_two_kinds_is_not_a_collision() -> None:
    pack = read_pack(
        archive_of(
            {
                "pack.yaml": 'ref: demo\nversion: "1.0.0"\n',
                "actions/go.yaml": "name: go\nrunner_type: local-shell-cmd\nentry_point: ''\n",
                "triggers/go.yaml": "name: go\n",
            }
        )
    )
    assert sorted(c.type for c in pack.components) == ["actions", "triggers"]


def test_a_workflow_linked_by_an_action_and_a_standalone_one_of_the_same_name_collide() -> None:
    files = {
        "pack.yaml": 'ref: demo\nversion: "1.0.0"\n',
        "actions/flow.yaml": "name: flow\nworkflow_file: workflows/flow.workflow.yaml\n",
        "actions/workflows/flow.workflow.yaml": "version: '1.0.0'\ntasks: [{name: a, action: core.noop}]\n",
        "workflows/Flow.yaml": "name: Flow\ntasks: [{name: a, action: core.noop}]\n",
    }
    with pytest.raises(ManifestError) as caught:
        read_pack(archive_of(files))
    assert caught.value.error_code == "COMPONENT_DUPLICATE"


def test_workflow_files_no_action_runs_are_noted_not_registered() -> None:
    pack = read_pack(
        archive_of(
            {
                "pack.yaml": 'ref: demo\nversion: "1.0.0"\n',
                "actions/workflows/orphan.yaml": "version: 1.0\ntasks: {a: {action: core.noop}}\n",
            }
        )
    )
    assert pack.components == []
    assert pack.problems == [
        {
            "file": "actions/workflows/orphan.yaml",
            "field": "(root)",
            "problem": "no action runs this workflow: kept in the archive, not registered",
        }
    ]


def _fixture_archive(folder: Path) -> PackArchive:
    return in_memory_archive(
        {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    )


@pytest.mark.parametrize(
    ("folder", "counts"),
    [
        (
            ATTUNE / "core_like",
            {"actions": 4, "workflows": 2, "runtimes": 3, "sensors": 1, "triggers": 3, "rules": 1}
            | {"permission_sets": 2},
        ),
        (ATTUNE / "test_pack", {"actions": 4, "workflows": 1}),
        (EXCHANGE / "slack", {"actions": 2, "sensors": 2, "rules": 1}),
        (EXCHANGE / "aws", {"actions": 4}),
        (EXCHANGE / "jira", {"actions": 4, "workflows": 2, "aliases": 2}),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_the_fixture_packs_read_whole(folder: Path, counts: dict[str, int]) -> None:
    from collections import Counter

    pack = read_pack(_fixture_archive(folder))
    assert dict(Counter(c.type for c in pack.components)) == counts
    assert pack.problems == []


# --- registry indices in Attune's form ------------------------------------------------------------


def test_an_attune_registry_index_entry_keeps_dependencies_sources_checksum_and_contents() -> None:
    import json

    from attune_packs.domain.registry_index import parse_index

    digest = "sha256:" + "ab" * 32
    index = {
        "registry_name": "Example",
        "registry_url": "https://registry.example.org",
        "version": "1.0",
        "last_updated": "2026-12-01T00:00:00Z",
        "packs": [
            {
                "ref": "slack",
                "label": "Slack",
                "description": "Slack",
                "version": "2.1.0",
                "author": "Example",
                "license": "Apache-2.0",
                "runtime_deps": ["python3"],
                "checksum": digest.upper().replace("SHA256", "sha256"),
                "install_sources": [
                    {"type": "git", "url": "https://git.example.org/slack.git", "ref": "v2.1.0", "checksum": digest},
                    {"type": "archive", "url": "https://example.org/slack-2.1.0.tar.gz", "checksum": digest},
                ],
                "contents": {
                    "actions": [{"name": "post"}, {"name": "upload"}],
                    "sensors": [{"name": "s"}],
                    "rules": [],
                },
                "dependencies": {
                    "attune_version": ">=0.1.0",
                    "python_version": ">=3.9",
                    "packs": ["core_utils@>=1.0.0,<2.0.0", "http_tools@1.2.0", "email"],
                },
                "meta": {"downloads": 3},
            }
        ],
    }
    [entry] = parse_index(json.dumps(index).encode(), source="index.json").packs
    assert entry.dependencies == {"core_utils": ">=1.0.0,<2.0.0", "http_tools": "=1.2.0", "email": "*"}
    assert (entry.attune_version, entry.python_version) == (">=0.1.0", ">=3.9")
    assert entry.checksum == digest and [s.type for s in entry.install_sources] == ["git", "archive"]
    assert entry.content_counts == {"actions": 2, "sensors": 1, "rules": 0}
    assert entry.runtime_deps == ["python3"]
    assert entry.model_extra is not None and entry.model_extra["license"] == "Apache-2.0"


@pytest.mark.parametrize(
    "dependencies",
    [
        {"packs": ["Bad@1.0.0"]},
        {"packs": ["x@>>1"]},
        {"attune_version": 1.0, "packs": []},
    ],
)
def test_a_bad_attune_dependencies_object_makes_the_index_invalid(dependencies: dict) -> None:
    import json

    from attune_packs.domain.registry_index import parse_index
    from attune_packs.errors import SourceError

    entry = {"ref": "a", "version": "1.0.0", "install_sources": [{"type": "git", "url": "https://x/a.git"}]}
    with pytest.raises(SourceError) as caught:
        parse_index(json.dumps({"packs": [{**entry, "dependencies": dependencies}]}).encode(), source="i")
    assert caught.value.error_code == "INDEX_INVALID"


# --- schemas -------------------------------------------------------------------------------------


def test_both_schema_forms_normalise_to_the_same_object_form() -> None:
    from attune_packs.domain import json_schema

    flat = {
        "a": {"type": "string", "required": True, "secret": True},
        "b": {"type": "object", "properties": {"c": {"type": "integer", "required": True}}},
    }
    obj = json_schema.normalise(flat)
    assert obj == {
        "type": "object",
        "properties": {
            "a": {"type": "string", "secret": True},
            "b": {"type": "object", "properties": {"c": {"type": "integer"}}, "required": ["c"]},
        },
        "required": ["a"],
    }
    assert json_schema.normalise(obj) == obj, "the object form is already normal"
    assert json_schema.check_schema(flat) == [] and json_schema.check_schema(obj) == []


def test_values_are_validated_as_json_schema_types() -> None:
    from attune_packs.domain import json_schema

    assert json_schema.validate(True, {"type": "integer"}) != [], "a boolean is not an integer"
    assert json_schema.validate(2.0, {"type": "integer"}) == []
    assert json_schema.validate(2, {"type": "number", "exclusiveMaximum": 2}) != []
    assert json_schema.validate("x", {"type": ["string", "null"], "const": "x"}) == []
    assert json_schema.validate([1, "a"], {"type": "array", "items": {"type": "integer"}}, "v") == [
        ("v.1", "must be of type integer, not str 'a'")
    ]
