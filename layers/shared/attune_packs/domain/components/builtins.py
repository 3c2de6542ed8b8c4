"""The platform's own names: built-in component refs, reserved pack refs and known runtimes.

One list serves every check. A pack refers to a built-in without declaring a dependency; no pack
but the system pack that ships them may define one; the pack refs below are reserved.

The built-ins come from two places, both provided under the ``core`` pack ref:

* StackStorm's core pack (``core.st2.*`` triggers, ``core.local`` ...), which Exchange packs use;
* Attune's core pack (``packs/core`` of the Attune repository): its timer and queue triggers,
  its actions, its workflow, its sensor and its runtimes.
"""

from __future__ import annotations

CORE_PACK = "core"

_STACKSTORM_TRIGGERS = frozenset(
    {
        "core.st2.IntervalTimer",
        "core.st2.DateTimer",
        "core.st2.CronTimer",
        "core.st2.webhook",
        "core.st2.generic.actiontrigger",
        "core.st2.generic.notifytrigger",
        "core.st2.generic.inquiry",
        "core.st2.action.file_written",
        "core.st2.key_value_pair.create",
        "core.st2.key_value_pair.update",
        "core.st2.key_value_pair.value_change",
        "core.st2.key_value_pair.delete",
        "core.st2.sensor.process_spawn",
        "core.st2.sensor.process_exit",
    }
)
_ATTUNE_TRIGGERS = frozenset(
    {
        "core.intervaltimer",
        "core.crontimer",
        "core.datetimetimer",
        "core.rruletimer",
        "core.alert",
        "core.queue_empty",
        "core.queue_started",
    }
)
_STACKSTORM_ACTIONS = frozenset(
    {
        "core.local",
        "core.local_sudo",
        "core.remote",
        "core.remote_sudo",
        "core.http",
        "core.noop",
        "core.echo",
        "core.announcement",
        "core.ask",
        "core.inject_trigger",
        "core.pause",
        "core.error",
        "core.sendmail",
        "core.uuid",
        "core.winrm_cmd",
        "core.winrm_ps_cmd",
    }
)
_ATTUNE_ACTIONS = frozenset(
    {
        "core.ask",
        "core.echo",
        "core.noop",
        "core.sleep",
        "core.http_request",
        "core.run_agent_command",
        "core.download_packs",
        "core.get_pack_dependencies",
        "core.build_pack_envs",
        "core.register_packs",
        "core.install_packs",  # a workflow, run as an action
    }
)
BUILTIN_TRIGGERS = _STACKSTORM_TRIGGERS | _ATTUNE_TRIGGERS
BUILTIN_ACTIONS = _STACKSTORM_ACTIONS | _ATTUNE_ACTIONS
BUILTIN_SENSORS = frozenset({"core.timer_sensor"})
BUILTIN_WORKFLOWS = frozenset({"core.install_packs"})
# Runtimes Attune's core pack defines (runtimes/*.yaml): ref -> the names runtime_deps may use.
RUNTIME_ALIASES: dict[str, tuple[str, ...]] = {
    "python": ("python", "python3"),
    "nodejs": ("nodejs", "node", "node.js"),
    "shell": ("shell", "bash", "sh"),
    "native": ("native", "builtin", "standalone"),
    "go": ("go", "golang"),
    "java": ("java", "jdk", "openjdk"),
    "perl": ("perl", "perl5"),
    "r": ("r", "rscript"),
    "ruby": ("ruby", "rb"),
}
BUILTIN_RUNTIMES = frozenset(f"core.{name}" for name in RUNTIME_ALIASES)
BUILTIN_REFS = BUILTIN_TRIGGERS | BUILTIN_ACTIONS | BUILTIN_SENSORS | BUILTIN_WORKFLOWS | BUILTIN_RUNTIMES

# Pack refs no installed pack may take, with the reason a refusal gives. ``core`` is the one pack
# ref that is reserved *for* a pack: the system pack (``system: true``) that ships the built-ins.
RESERVED_PACK_REFS: dict[str, str] = {
    "attune": "it names the platform itself",
    "system": "it names the platform's own namespace",
    "_global": "it names the registry's global scope",
    "st2": "it is StackStorm's own client pack, which drives a StackStorm API this platform does not run",
    "packs": "it is StackStorm's bundled pack manager; installing packs is this installer's job",
    "linux": "it is a pack StackStorm bundles with the platform, not one installed from a registry",
    "chatops": "it is a pack StackStorm bundles with the platform, not one installed from a registry",
    "default": "it is StackStorm's default pack for content with no pack",
}
SYSTEM_PACK_REFS = frozenset({CORE_PACK})


def runtime_name(name: str) -> str | None:
    """The runtime a ``runtime_deps`` name means (``python3`` -> ``python``), or None."""
    key = name.strip().lower()
    for runtime, aliases in RUNTIME_ALIASES.items():
        if key in aliases:
            return runtime
    return None


def known_runtime_names() -> str:
    return ", ".join(alias for aliases in RUNTIME_ALIASES.values() for alias in aliases)
