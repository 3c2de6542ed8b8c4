"""``attune-packs plan``, ``attune-packs lock``, and ``install --locked`` / ``--lock-out``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# attune_cli.planning (and the pydantic models it imports) is imported by the commands that use it:
# every command builds this module's parsers, and most of them never plan.

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 2, 64


def add_parsers(sub: Any, common: argparse.ArgumentParser, install: argparse.ArgumentParser) -> None:
    install.add_argument("--locked", metavar="LOCKFILE", help="install exactly this lockfile (LOCK_MISMATCH if moved)")
    install.add_argument("--lock-out", metavar="FILE", help="write the lockfile of what was installed")
    plan = sub.add_parser(
        "plan",
        parents=[common],
        help="show what an install would do, changing nothing",
        description="Plan an installation: packs in order and why, digests, environments (cache hit or build), "
        "conflicts, and for upgrades the component diff. Nothing is registered, built or kept.",
    )
    _request_options(plan)
    plan.set_defaults(func=cmd_plan)
    lock = sub.add_parser(
        "lock",
        parents=[common],
        help="write a lockfile pinning what an install would install",
        description="Write a lockfile (docs/lockfile.md): every pack of the plan with its version, source, Git "
        "commit and archive sha256, Python requirements with hashes, Node.js packages with integrity.",
    )
    _request_options(lock)
    lock.add_argument("-o", "--output", metavar="FILE", default="attune-packs.lock", help="(attune-packs.lock)")
    lock.set_defaults(func=cmd_lock)


def _request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="as for install")
    parser.add_argument("--registry", metavar="INDEX", help="registry index.json (path, s3:// or https://)")
    for flag in ("skip-dependencies", "skip-env-build", "skip-validation", "force", "skip-python", "skip-nodejs"):
        parser.add_argument(f"--{flag}", action="store_true", help="as for install")
    parser.add_argument("--allow-unpinned", action="store_true", help="accept registry entries without checksum")
    parser.add_argument("--python-version", default="3.12", help="Python version of the environments (3.12)")
    parser.add_argument("--nodejs-version", default="20", help="Node.js major version of the environments (20)")


def _request(args: argparse.Namespace) -> Any:
    from attune_cli.main import install_request

    return install_request(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from attune_cli import planning
    from attune_cli.main import _backend

    request = _request(args)
    with _backend(args) as backend:
        planned = planning.plan(backend, request)
    print(json.dumps(planned, indent=2) if args.json else plan_summary(planned))
    return EXIT_OK if planned["ok"] else EXIT_FAILED


def cmd_lock(args: argparse.Namespace) -> int:
    from attune_cli import planning
    from attune_cli.main import _backend
    from attune_packs.domain.lockfile import Lockfile, dump_lockfile

    request = _request(args)
    with _backend(args) as backend:
        lock = Lockfile.model_validate(planning.lock(backend, request))
    Path(args.output).write_text(dump_lockfile(lock))
    if args.json:
        print(dump_lockfile(lock))
    else:
        print(f"wrote {args.output}: {len(lock.packs)} packs ({', '.join(p.pack_ref for p in lock.packs)})")
    return EXIT_OK


def lock_sources(path: str) -> list[str]:
    from attune_packs.domain.lockfile import parse_lockfile

    return parse_lockfile(Path(path).read_bytes()).requested_sources()


def start_locked(backend: Any, request: Any, path: str) -> tuple[Any, Any]:
    """Start the installation of exactly the lockfile at ``path`` (verified first)."""
    from attune_cli import planning

    document = json.loads(Path(path).read_bytes())
    if hasattr(backend, "start_locked_install"):  # the stack's API verifies it
        return request, backend.start_locked_install(request, document)
    locked = planning.verify_locked(backend, request, document)
    return locked, backend.start_install(locked)


def write_installation_lock(backend: Any, request: Any, installation_id: str, result: Any, path: str) -> None:
    from attune_cli import planning
    from attune_packs.domain.lockfile import Lockfile, dump_lockfile

    lock = Lockfile.model_validate(planning.installation_lock(backend, request, installation_id, result.output or {}))
    Path(path).write_text(dump_lockfile(lock))
    print(f"wrote {path}: the lock of installation {installation_id}", file=sys.stderr)


def plan_summary(planned: dict[str, Any]) -> str:
    lines = []
    for pack in planned["packs"]:
        why = (
            "requested"
            if pack["requested"]
            else "required by " + ", ".join(f"{r['required_by']} ({r['constraint']})" for r in pack["required_by"])
        )
        installed = f" (installed {pack['installed_version']})" if pack["installed_version"] else ""
        lines.append(f"{pack['action']:>9}  {pack['pack_ref']} {pack['pack_version']}{installed}  [{why}]")
        lines.append(
            f"           {pack['checksum']}" + (f"  commit {pack['git_commit']}" if pack["git_commit"] else "")
        )
        for env in pack["environments"]:
            state = "cache hit" if env["cached"] else "would be built"
            lines.append(f"           {env['kind']} {env['version']} {env['env_hash'][:16]}… {state}")
        diff = pack.get("diff")
        if diff:
            for verb, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
                for change in diff[verb]:
                    fields = f" ({', '.join(change['fields'])})" if change["fields"] else ""
                    lines.append(f"           {sign} {change['type']} {change['ref']}{fields}")
    if planned["unchanged"]:
        lines.append(f"unchanged: {', '.join(planned['unchanged'])}")
    for conflict in planned["conflicts"]:
        lines.append(f"CONFLICT {conflict['pack_ref']}: {conflict['message']} [{conflict['error_code']}]")
    for failure in planned["failed"]:
        lines.append(f"FAILED {failure['source']}: {failure['error']} [{failure['error_code']}]")
    lines.append(
        f"{len(planned['packs'])} packs, {planned['environments_to_build']} environments to build, "
        f"{planned['cache_hits']} cache hits" + ("" if planned["ok"] else "; the install would not complete")
    )
    return "\n".join(lines)
