"""Component metadata in Attune's and StackStorm's forms; malformed files fail naming file and field;
references resolve to the pack, its dependencies or the core built-ins."""

from __future__ import annotations

import pytest

from attune_packs.domain.components import (
    Component,
    Reference,
    parse_component,
    references,
    resolve_references,
    with_declared_triggers,
)
from attune_packs.errors import ManifestError

FILES = {"actions/run.py", "sensors/watch.py", "actions/workflows/flow.yaml"}


def parse(kind: str, text: str, *, name: str = "c", strict: bool = True) -> Component:
    return parse_component(kind, f"{kind}/{name}.yaml", text.encode(), "demo", FILES, strict=strict)


def test_an_attune_action_keeps_label_runner_entry_point_parameters_and_output() -> None:
    action = parse(
        "actions",
        "ref: demo.run\nlabel: Run it\nrunner_type: python-script\nentry_point: run.py\n"
        "parameters:\n  n: {type: integer, required: true}\noutput_schema:\n  type: object\nenabled: false\n",
    )
    assert (action.name, action.ref, action.label, action.description) == ("run", "demo.run", "Run it", "Run it")
    assert (action.runner_type, action.entry_point, action.enabled) == ("python-script", "run.py", False)
    assert action.parameters == {"n": {"type": "integer", "required": True}}
    assert action.output_schema == {"type": "object"}
    assert action.attributes == {}


def test_a_stackstorm_action_with_name_and_pack() -> None:
    action = parse(
        "actions",
        "name: flow\npack: demo\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\noutput: {type: object}\n",
    )
    assert action.ref == "demo.flow" and action.output_schema == {"type": "object"}


def test_rules_in_both_forms_point_at_a_trigger_and_an_action() -> None:
    attune = parse("rules", "ref: demo.r\ntrigger_ref: demo.tick\naction_ref: demo.run\ncriteria: {}\n")
    st2 = parse(
        "rules",
        "name: r2\npack: demo\ntrigger:\n  type: core.st2.CronTimer\n  parameters: {minute: 5}\n"
        "action:\n  ref: core.local\n  parameters: {cmd: date}\n",
    )
    assert (attune.trigger_ref, attune.action_ref) == ("demo.tick", "demo.run")
    assert (st2.trigger_ref, st2.action_ref) == ("core.st2.CronTimer", "core.local")
    assert st2.attributes["action"]["parameters"] == {"cmd": "date"}
    assert [(r.field, r.kind, r.ref) for r in references([attune, st2])] == [
        ("trigger_ref", "triggers", "demo.tick"),
        ("action_ref", "actions", "demo.run"),
        ("trigger.type", "triggers", "core.st2.CronTimer"),
        ("action.ref", "actions", "core.local"),
    ]


def test_sensors_name_triggers_or_declare_them_inline() -> None:
    attune = parse("sensors", "name: s\nentry_point: watch.py\ntrigger_types: [demo.tick]\n")
    st2 = parse(
        "sensors",
        "name: watch\nentry_point: watch.py\ntrigger_types:\n  - name: down\n    description: Down.\n"
        "    payload_schema: {type: object}\n",
        name="watch",
    )
    assert attune.trigger_types == ["demo.tick"] and st2.trigger_types == ["demo.down"]
    expanded = with_declared_triggers("demo", [st2])
    [trigger] = [c for c in expanded if c.type == "triggers"]
    assert (trigger.ref, trigger.declared_by, trigger.description) == ("demo.down", "demo.watch", "Down.")
    assert trigger.attributes == {"payload_schema": {"type": "object"}}
    duplicate = Component(type="triggers", name="down", ref="demo.down", source_file="triggers/down.yaml")
    with pytest.raises(ManifestError) as caught:
        with_declared_triggers("demo", [duplicate, st2])
    assert "sensors/watch.yaml: trigger_types[0].name" in caught.value.message


def test_workflow_files_carry_their_tasks() -> None:
    listed = parse("workflows", "name: w\ntasks:\n  - name: a\n    action: demo.run\n  - name: b\n")
    mapped = parse("workflows", "name: w\ntasks:\n  a: {action: demo.run}\n")
    assert listed.attributes["tasks"][0]["action"] == "demo.run" and "a" in mapped.attributes["tasks"]


def test_runtimes_permission_sets_and_queues_are_components_too() -> None:
    runtime = parse("runtimes", "name: python312\ndescription: CPython 3.12\nversion: '3.12'\n")
    permissions = parse("permission_sets", "name: operators\npermissions: [pack.install, pack.read]\n")
    queue = parse("queues", "name: slow\nconcurrency: 2\n")
    assert (runtime.ref, runtime.attributes) == ("demo.python312", {"version": "3.12"})
    assert permissions.attributes["permissions"] == ["pack.install", "pack.read"]
    assert queue.attributes == {"concurrency": 2}


def test_policies_give_parameter_values_not_schemas() -> None:
    policy = parse(
        "policies", "name: p\nresource_ref: demo.run\npolicy_type: action.retry\nparameters:\n  retry_on: timeout\n"
    )
    assert (policy.parameters, policy.resource_ref) == ({"retry_on": "timeout"}, "demo.run")


@pytest.mark.parametrize(
    ("kind", "text", "field", "problem"),
    [
        ("actions", "name: a\nrunner_type: x\nparameters:\n  n: 3\n", "parameters.n", "must be a mapping"),
        ("actions", "name: a\nrunner_type: x\nparameters:\n  n: {type: text}\n", "parameters.n.type", "JSON Schema"),
        ("actions", "name: a\nrunner_type: x\nparameters:\n  n: {required: 'yes'}\n", "parameters.n.required", "true"),
        ("actions", "name: a\nrunner_type: x\nenabled: 'no'\n", "enabled", "true or false"),
        ("actions", "name: a\nrunner_type: [x]\n", "runner_type", "must be a string"),
        ("actions", "name: a\nrunner_type: x\noutput_schema: [1]\n", "output_schema", "mapping"),
        ("actions", "ref: other.a\nrunner_type: x\n", "ref", "belongs to pack 'other'"),
        ("actions", "name: a\nref: demo.b\nrunner_type: x\n", "ref", "disagrees with name"),
        ("actions", "name: a\nrunner_type: x\ndescription: 7\n", "description", "must be a string"),
        ("rules", "name: r\naction_ref: demo.a\n", "trigger_ref", "a rule needs trigger_ref"),
        ("rules", "name: r\ntrigger_ref: .tick\naction_ref: demo.a\n", "trigger_ref", "full reference"),
        ("rules", "name: r\ntrigger: {parameters: {}}\naction: {ref: demo.a}\n", "trigger.type", "is missing"),
        (
            "rules",
            "name: r\ntrigger_ref: demo.t\ntrigger: {type: demo.t}\naction_ref: demo.a\n",
            "trigger_ref",
            "not both",
        ),
        ("rules", "name: r\ntrigger_ref: demo.t\naction_ref: demo.a\ncriteria: [1]\n", "criteria", "mapping"),
        ("sensors", "name: s\ntrigger_types: demo.t\n", "trigger_types", "must be a list"),
        ("sensors", "name: s\ntrigger_types: [{description: x}]\n", "trigger_types[0].name", "not a valid trigger"),
        ("triggers", "name: t\npayload_schema: [1]\n", "payload_schema", "mapping"),
        ("workflows", "name: w\n", "tasks", "needs tasks"),
        ("workflows", "name: w\ntasks: [{action: demo.a}]\n", "tasks[0].name", "needs a name"),
        ("workflows", "name: w\ntasks: [{name: a}, {name: a}]\n", "tasks[1].name", "duplicate task"),
        ("workflows", "name: w\ntasks: 3\n", "tasks", "must be a list"),
        ("policies", "name: p\nresource_ref: 5\n", "resource_ref", "reference"),
        ("permission_sets", "name: ops\n", "grants", "needs grants"),
        ("permission_sets", "name: ops\npermissions: [3]\n", "permissions[0]", "permission name"),
        ("queues", "name: q\nconcurrency: 0\n", "concurrency", "positive integer"),
        ("queues", "- a list\n", "(root)", "mapping of fields"),
    ],
)
def test_a_malformed_component_names_its_file_and_field(kind: str, text: str, field: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse(kind, text)
    assert caught.value.details[0]["file"] == f"{kind}/c.yaml"
    assert caught.value.details[0]["field"] == field
    assert problem in caught.value.message
    assert caught.value.message.startswith(f"{kind}/c.yaml: {field}: ")


def test_without_strict_validation_only_safety_and_shape_are_checked() -> None:
    assert parse("rules", "name: r\n", strict=False).trigger_ref is None
    assert parse("actions", "ref: other.a\n", strict=False).name == "other.a"
    assert parse("permission_sets", "name: ops\n", strict=False).name == "ops"
    with pytest.raises(ManifestError):
        parse("actions", "name: a\nparameters: [1]\n", strict=False)


def rule(trigger: str, action: str) -> Component:
    return parse("rules", f"name: r\ntrigger_ref: {trigger}\naction_ref: {action}\n")


def test_references_resolve_to_the_pack_the_core_or_what_the_registry_has() -> None:
    own = [
        rule("demo.t", "demo.a"),
        Component(type="triggers", name="t", ref="demo.t", source_file="triggers/t.yaml"),
        Component(type="actions", name="a", ref="demo.a", source_file="actions/a.yaml"),
    ]
    resolve_references("demo", own, [], lambda refs: set())
    resolve_references("demo", [rule("core.st2.webhook", "core.http")], [], lambda refs: set())
    asked: list[list[Reference]] = []

    def registry(refs: list[Reference]) -> set[tuple[str, str]]:
        asked.append(refs)
        return {("triggers", "lib.t")}

    with pytest.raises(ManifestError) as caught:
        resolve_references("demo", [rule("lib.t", "lib.a")], ["lib"], registry)
    assert [r.ref for r in asked[0]] == ["lib.t", "lib.a"], "only references into dependencies are looked up"
    assert caught.value.error_code == "COMPONENT_REFERENCE_UNRESOLVED"
    assert caught.value.details == [
        {"file": "rules/c.yaml", "field": "action_ref", "problem": "pack lib (a dependency) has no action 'a'"}
    ]


def test_every_unresolved_reference_is_reported_at_once() -> None:
    sensor = parse("sensors", "name: s\ntrigger_types: [demo.missing]\n", name="s")
    with pytest.raises(ManifestError) as caught:
        resolve_references("demo", [rule("x.t", "core.nope"), sensor], [], lambda refs: set())
    assert [(p["file"], p["field"]) for p in caught.value.details] == [
        ("rules/c.yaml", "trigger_ref"),
        ("rules/c.yaml", "action_ref"),
        ("sensors/s.yaml", "trigger_types[0]"),
    ]


# --- Attune's kinds and StackStorm Exchange's forms -------------------------------------------------


def test_a_runtime_is_identified_by_ref_and_its_name_is_a_display_label() -> None:
    runtime = parse(
        "runtimes",
        "ref: demo.python\npack_ref: demo\nname: Python\naliases: [python, python3]\n"
        "description: Python 3\nexecution_config: {interpreter: {binary: python3}}\n",
        name="python",
    )
    assert (runtime.name, runtime.ref, runtime.label) == ("python", "demo.python", "Python")
    assert runtime.attributes["aliases"] == ["python", "python3"]
    assert runtime.attributes["display_name"] == "Python"
    with pytest.raises(ManifestError, match="pack_ref"):
        parse("runtimes", "ref: demo.x\npack_ref: other\nname: X\n")


def test_a_native_runner_names_a_platform_binary_not_a_pack_file() -> None:
    sensor = parse("sensors", "ref: demo.timer\nrunner_type: native\nentry_point: attune-core-timer-sensor\n")
    assert (sensor.entry_point, sensor.entry_point_kind) == ("attune-core-timer-sensor", "platform_binary")
    shipped = parse("sensors", "name: w\nrunner_type: native\nentry_point: watch.py\n")
    assert shipped.entry_point_kind == "file", "a binary the pack ships is a pack file"
    with pytest.raises(ManifestError) as caught:
        parse("sensors", "name: w\nrunner_type: native\nentry_point: 'bin/../../x y'\n")
    assert caught.value.error_code == "COMPONENT_ENTRY_POINT_INVALID"
    with pytest.raises(ManifestError) as caught:
        parse("sensors", "name: w\nrunner_type: python\nentry_point: attune-core-timer-sensor\n")
    assert caught.value.error_code == "COMPONENT_ENTRY_POINT_MISSING", "only native runners name binaries"


@pytest.mark.parametrize("runner", ["local-shell-cmd", "remote-shell-cmd", "http-request", "noop", "winrm-ps-cmd"])
def test_command_runners_may_leave_entry_point_empty(runner: str) -> None:
    action = parse("actions", f'name: a\nrunner_type: {runner}\nentry_point: ""\nparameters:\n  cmd: {{default: ls}}\n')
    assert (action.entry_point, action.entry_point_kind) == (None, None)


@pytest.mark.parametrize("runner", ["python-script", "local-shell-script", "orquesta"])
def test_script_and_workflow_runners_need_their_entry_point(runner: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse("actions", f'name: a\nrunner_type: {runner}\nentry_point: ""\n')
    assert caught.value.error_code == "COMPONENT_ENTRY_POINT_INVALID"
    assert parse("actions", f'name: a\nrunner_type: {runner}\nentry_point: ""\n', strict=False).entry_point is None


def test_parameters_as_a_json_schema_object() -> None:
    action = parse(
        "actions",
        "name: a\nrunner_type: shell\nentry_point: run.py\nparameters:\n  type: object\n"
        "  properties:\n    url: {type: string}\n    retries: {type: integer, minimum: 0}\n  required: [url]\n",
    )
    assert action.parameters["required"] == ["url"]
    for bad, field in (
        ("  type: object\n  properties:\n    url: {type: text}\n", "parameters.properties.url.type"),
        ("  type: object\n  properties: [url]\n", "parameters.properties"),
        ("  type: object\n  properties: {url: {type: string}}\n  required: url\n", "parameters.required"),
    ):
        with pytest.raises(ManifestError) as caught:
            parse("actions", "name: a\nrunner_type: shell\nentry_point: run.py\nparameters:\n" + bad)
        assert caught.value.details[0]["field"] == field


def test_a_parameter_named_type_in_the_inline_form_is_not_taken_for_a_schema() -> None:
    action = parse("actions", "name: a\nrunner_type: shell\nentry_point: run.py\nparameters:\n  type: {type: string}\n")
    assert action.parameters == {"type": {"type": "string"}}


def test_same_pack_short_references_resolve_to_the_pack() -> None:
    rule = parse("rules", "name: r\ntrigger_type: intervaltimer\naction_ref: echo\n")
    assert (rule.trigger_ref, rule.action_ref) == ("demo.intervaltimer", "demo.echo")
    nested = parse("rules", "name: r\ntrigger: {type: tick}\naction: {ref: other.go}\n")
    assert (nested.trigger_ref, nested.action_ref) == ("demo.tick", "other.go")
    text = "name: s\nentry_point: watch.py\ntrigger_types: [crontimer, core.intervaltimer]\n"
    sensor = parse("sensors", text, name="s")
    assert sensor.trigger_types == ["demo.crontimer", "core.intervaltimer"]
    policy = parse("policies", "name: p\nresource_ref: run\n")
    assert policy.resource_ref == "demo.run"
    with pytest.raises(ManifestError, match="not both"):
        parse("rules", "name: r\ntrigger_type: a\ntrigger_ref: demo.a\naction_ref: demo.b\n")


def test_attune_core_builtins_resolve_beside_stackstorms() -> None:
    rule = parse("rules", "name: r\ntrigger_ref: core.intervaltimer\naction_ref: core.sleep\n")
    st2 = parse("rules", "name: r2\ntrigger: {type: core.st2.CronTimer}\naction: {ref: core.local}\n", name="r2")
    for ref in ("core.crontimer", "core.datetimetimer"):
        resolve_references("demo", [parse("sensors", f"name: s\ntrigger_types: [{ref}]\n")], [], lambda r: set())
    resolve_references("demo", [rule, st2], [], lambda refs: set())


def test_an_alias_points_at_an_action_and_has_formats() -> None:
    alias = parse(
        "aliases",
        "name: jira_get\naction_ref: demo.get\nformats:\n  - display: 'get <key>'\n"
        "    representation: ['get {{ key }}']\n  - 'show {{ key }}'\nack: {enabled: false}\n",
    )
    assert (alias.ref, alias.action_ref) == ("demo.jira_get", "demo.get")
    assert alias.attributes["formats"][1] == "show {{ key }}" and alias.attributes["ack"] == {"enabled": False}
    assert [(r.kind, r.ref) for r in references([alias])] == [("actions", "demo.get")]
    for bad, field in (
        ("name: a\naction_ref: demo.x\n", "formats"),
        ("name: a\naction_ref: demo.x\nformats: [{display: x}]\n", "formats[0].representation"),
        ("name: a\nformats: [x]\n", "action_ref"),
    ):
        with pytest.raises(ManifestError) as caught:
            parse("aliases", bad)
        assert caught.value.details[0]["field"] == field


def test_a_workflow_keeps_its_output_map() -> None:
    workflow = parse("workflows", "name: w\ntasks: {a: {action: demo.run}}\noutput:\n  done: '{{ a.result }}'\n")
    assert workflow.output_schema is None and workflow.attributes["output"] == {"done": "{{ a.result }}"}


def test_a_workflow_action_needs_no_runner_and_may_not_have_one() -> None:
    action = parse("actions", "ref: demo.deploy\nworkflow_file: workflows/flow.yaml\n")
    assert (action.runner_type, action.entry_point) == (None, "workflows/flow.yaml")
    assert action.entry_point_kind == "workflow"
    with pytest.raises(ManifestError, match="no runner_type"):
        parse("actions", "ref: demo.deploy\nworkflow_file: workflows/flow.yaml\nrunner_type: shell\n")


WORKFLOWS = {
    "attune": (
        "ref: demo.flow\nworkflow_file: workflows/flow.workflow.yaml\n",
        "version: '1.0.0'\ntasks:\n  - name: a\n    action: demo.run\n"
        "    next: [{when: '{{ succeeded() }}', do: [b]}]\n"
        "  - name: b\n    action: core.echo\n",
        "attune",
    ),
    "orquesta": (
        "name: flow\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\n",
        "version: 1.0\ninput: [x]\ntasks:\n  a:\n    action: demo.run\n    next:\n      - when: <% succeeded() %>\n"
        "        do: b, noop\n  b:\n    action: core.noop\n",
        "orquesta",
    ),
    "action-chain": (
        "name: flow\nrunner_type: action-chain\nentry_point: workflows/flow.yaml\n",
        "chain:\n  - {name: a, ref: demo.run, on-success: b}\n  - {name: b, ref: core.local}\ndefault: a\n",
        "action-chain",
    ),
}


@pytest.mark.parametrize("shape", sorted(WORKFLOWS))
def test_the_workflow_an_action_runs_is_checked_and_registered_as_its_workflow(shape: str) -> None:
    from attune_packs.domain.components import linked_workflow

    action_text, graph, expected_format = WORKFLOWS[shape]
    target = "actions/workflows/flow.workflow.yaml" if shape == "attune" else "actions/workflows/flow.yaml"
    files = {target: graph.encode()}
    action = parse_component("actions", "actions/flow.yaml", action_text.encode(), "demo", set(files) | FILES)
    workflow = linked_workflow(action, files, strict=True)
    assert workflow is not None
    assert (workflow.type, workflow.ref, workflow.declared_by) == ("workflows", "demo.flow", "demo.flow")
    assert (workflow.source_file, workflow.attributes["format"], workflow.attributes["tasks"]) == (
        target,
        expected_format,
        2,
    )


@pytest.mark.parametrize(
    ("runner", "graph", "field"),
    [
        ("orquesta", "version: 1.0\ntasks:\n  a: {action: x.y, next: [{do: missing}]}\n", "tasks.a.next[0].do"),
        ("orquesta", "version: 1.0\ntasks:\n  a: {action: 3}\n", "tasks.a.action"),
        ("orquesta", "version: 1.0\ninput: [x]\n", "tasks"),
        ("action-chain", "chain:\n  - {name: a}\n", "chain[0].ref"),
        ("action-chain", "chain:\n  - {name: a, ref: x.y, on-success: nowhere}\n", "chain[0].on-success"),
        ("action-chain", "chain: []\n", "chain"),
    ],
)
def test_a_broken_workflow_fails_its_action_naming_the_workflow_file(runner: str, graph: str, field: str) -> None:
    from attune_packs.domain.components import linked_workflow

    files = {"actions/workflows/flow.yaml": graph.encode()}
    text = f"name: flow\nrunner_type: {runner}\nentry_point: workflows/flow.yaml\n"
    action = parse_component("actions", "actions/flow.yaml", text.encode(), "demo", set(files))
    with pytest.raises(ManifestError) as caught:
        linked_workflow(action, files, strict=True)
    assert (caught.value.details[0]["file"], caught.value.details[0]["field"]) == ("actions/workflows/flow.yaml", field)


def test_a_workflow_file_that_is_missing_fails_the_action() -> None:
    from attune_packs.domain.components import linked_workflow

    text = b"ref: demo.flow\nworkflow_file: workflows/no.yaml\n"
    action = parse_component("actions", "actions/flow.yaml", text, "demo", set())
    with pytest.raises(ManifestError) as caught:
        linked_workflow(action, {}, strict=True)
    assert caught.value.error_code == "COMPONENT_ENTRY_POINT_MISSING"
    assert caught.value.details[0]["field"] == "workflow_file"


def test_an_attune_permission_set_keeps_its_grants() -> None:
    text = "ref: demo.viewer\nlabel: Viewer\ngrants:\n  - {resource: packs, actions: [read]}\n"
    grants = parse("permission_sets", text)
    assert grants.label == "Viewer" and grants.attributes["grants"] == [{"resource": "packs", "actions": ["read"]}]
