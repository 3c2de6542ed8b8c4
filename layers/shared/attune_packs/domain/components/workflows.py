"""Workflow definitions, in the three shapes packs carry them.

* Attune: a standalone ``workflows/<name>.yaml`` (metadata and ``tasks``), or an action whose
  ``workflow_file`` names a graph file relative to ``actions/`` (usually
  ``workflows/<name>.workflow.yaml``): ``version``, ``vars``, ``tasks`` (a list of tasks with
  ``name``, or a mapping of name to task), ``output_map``.
* StackStorm Orquesta: an action with ``runner_type: orquesta`` whose ``entry_point`` names
  ``workflows/<name>.yaml`` with ``version: 1.0``, ``input``, ``tasks`` (a mapping) and ``output``.
* StackStorm ActionChain: ``runner_type: action-chain``, the file holds ``chain`` (a list of
  links with ``name`` and ``ref``) and optionally ``default`` and ``vars``.

A workflow an action points at is registered as a workflow component of the same name as its
action (``declared_by`` the action's ref), so ``show`` lists it under ``workflows``.
"""

from __future__ import annotations

from posixpath import normpath
from typing import Any

from attune_packs.domain.components.model import Component, component_error
from attune_packs.domain.safe_yaml import load_yaml

# Runners whose entry point is a workflow file this module checks. (Mistral, removed from
# StackStorm in 3.3, nests its graph under the workflow's name: its file is kept, not checked.)
WORKFLOW_RUNNERS = {"orquesta": "orquesta", "action-chain": "action-chain"}
# Orquesta's engine commands, valid in ``do`` beside task names.
_ORQUESTA_COMMANDS = frozenset({"noop", "fail", "continue", "retry"})


def _task_list(tasks: list[Any], path: str) -> list[str]:
    names: list[str] = []
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise component_error(path, f"tasks[{index}]", "must be a mapping with name and action")
        name = task.get("name")
        if not isinstance(name, str) or not name:
            raise component_error(path, f"tasks[{index}].name", "every task needs a name")
        if name in names:
            raise component_error(path, f"tasks[{index}].name", f"duplicate task name {name!r}")
        names.append(name)
        if "action" in task and not isinstance(task["action"], str):
            raise component_error(path, f"tasks[{index}].action", "must be an action ref (a string)")
    return names


def _task_mapping(tasks: dict[Any, Any], path: str) -> list[str]:
    for name, task in tasks.items():
        if not isinstance(task, dict):
            raise component_error(path, f"tasks.{name}", "must be a mapping")
        if "action" in task and not isinstance(task["action"], str):
            raise component_error(path, f"tasks.{name}.action", "must be an action ref (a string)")
        transitions = task.get("next")
        if transitions is not None and not isinstance(transitions, list):
            raise component_error(path, f"tasks.{name}.next", "must be a list of transitions (when / publish / do)")
        for index, transition in enumerate(transitions or []):
            if not isinstance(transition, dict):
                raise component_error(path, f"tasks.{name}.next[{index}]", "must be a mapping (when / publish / do)")
            target = transition.get("do")
            # Orquesta accepts "a, b" as well as a list
            targets = [t.strip() for t in target.split(",")] if isinstance(target, str) else target or []
            if not isinstance(targets, list):
                raise component_error(path, f"tasks.{name}.next[{index}].do", "must name tasks (text or a list)")
            unknown = [t for t in targets if isinstance(t, str) and t not in tasks and t not in _ORQUESTA_COMMANDS]
            if unknown:
                where = f"tasks.{name}.next[{index}].do"
                raise component_error(path, where, f"names no task of this workflow: {unknown}")
    return [str(name) for name in tasks]


def check_graph(meta: dict[str, Any], path: str, *, allow_entry_point: bool = False) -> dict[str, Any]:
    """An Attune or Orquesta graph: ``tasks`` as a list or a mapping. Returns its summary."""
    tasks = meta.get("tasks")
    if tasks is None:
        if allow_entry_point and "entry_point" in meta:
            return {"format": "attune", "tasks": 0}
        raise component_error(path, "tasks", "a workflow needs tasks")
    if isinstance(tasks, list):
        names = _task_list(tasks, path)
    elif isinstance(tasks, dict):
        names = _task_mapping(tasks, path)
    else:
        raise component_error(path, "tasks", "must be a list of tasks or a mapping of task name to task")
    is_orquesta = str(meta.get("version")) in ("1.0", "1") and isinstance(tasks, dict)
    return {"format": "orquesta" if is_orquesta else "attune", "tasks": len(names)}


def check_action_chain(meta: dict[str, Any], path: str) -> dict[str, Any]:
    chain = meta.get("chain")
    if not isinstance(chain, list) or not chain:
        raise component_error(path, "chain", "an ActionChain needs chain: a non-empty list of links")
    names: list[str] = []
    for index, link in enumerate(chain):
        if not isinstance(link, dict):
            raise component_error(path, f"chain[{index}]", "must be a mapping with name and ref")
        name, ref = link.get("name"), link.get("ref")
        if not isinstance(name, str) or not name:
            raise component_error(path, f"chain[{index}].name", "every link needs a name")
        if name in names:
            raise component_error(path, f"chain[{index}].name", f"duplicate link name {name!r}")
        if not isinstance(ref, str) or not ref:
            raise component_error(path, f"chain[{index}].ref", "every link needs the ref of the action it runs")
        names.append(name)
    for index, link in enumerate(chain):
        for key in ("on-success", "on-failure"):
            target = link.get(key)
            if target is not None and target not in names:
                raise component_error(path, f"chain[{index}].{key}", f"{target!r} names no link of this chain")
    default = meta.get("default")
    if default is not None and default not in names:
        raise component_error(path, "default", f"{default!r} names no link of this chain")
    return {"format": "action-chain", "tasks": len(names)}


def workflow_path(action: Component) -> str | None:
    """The pack path of the workflow an action runs, or None for an action that runs no workflow."""
    target = action.attributes.get("workflow_file")
    if target is None and (action.runner_type or "") in WORKFLOW_RUNNERS:
        target = action.entry_point
    if not isinstance(target, str) or not target:
        return None
    folder = action.source_file.rsplit("/", 1)[0]
    return normpath(f"{folder}/{target}")


def linked_workflow(action: Component, files: dict[str, bytes], *, strict: bool) -> Component | None:
    """The workflow component of an action that runs a workflow, checked; None for other actions."""
    path = workflow_path(action)
    if path is None:
        return None
    field_name = "workflow_file" if "workflow_file" in action.attributes else "entry_point"
    content = files.get(path)
    if content is None:
        if not strict:
            return None
        raise component_error(
            action.source_file,
            field_name,
            f"the workflow file {path!r} is not in the pack",
            "COMPONENT_ENTRY_POINT_MISSING",
        )
    graph = load_yaml(content, source=path)
    if not isinstance(graph, dict):
        raise component_error(path, "(root)", "a workflow file must be a mapping")
    runner = WORKFLOW_RUNNERS.get(action.runner_type or "")
    summary = check_action_chain(graph, path) if runner == "action-chain" else check_graph(graph, path)
    if runner == "orquesta":
        summary["format"] = "orquesta"
    return Component(
        type="workflows",
        name=action.name,
        ref=action.ref,
        label=action.label,
        description=action.description,
        runner_type=action.runner_type,
        entry_point=path,
        entry_point_kind="workflow",
        parameters=action.parameters,
        source_file=path,
        declared_by=action.ref,
        attributes={"definition": graph, **summary},
    )
