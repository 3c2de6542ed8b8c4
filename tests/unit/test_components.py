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
