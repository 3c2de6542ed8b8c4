"""attune-packs: install Attune / StackStorm packs and read the pack registry.

Runs on the embedded local AWS stack by default: a local service on 127.0.0.1 that the first
command starts (state kept in .attune/local; `attune-packs local stop` stops it); against a deployed
stack's HTTP API with --api-url and --token (or ATTUNE_API_URL / ATTUNE_TOKEN, or
~/.config/attune-packs/config.json); or directly against a deployed stack with your AWS
credentials with --stack-name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from attune_cli import local_commands, plan_commands, render
from attune_cli.local_commands import state_dir

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_USAGE = 0, 1, 2, 64


def in_process() -> bool:
    """ATTUNE_LOCAL_IN_PROCESS=1 runs the local stack inside the command (tests), not as a service."""
    return os.environ.get("ATTUNE_LOCAL_IN_PROCESS", "").lower() in {"1", "true", "yes"}


def open_backend(*, stack_name: str | None, state_dir: Path) -> AbstractContextManager[Any]:
    from attune_cli.backends import open_backend as boto3_backend

    return boto3_backend(stack_name=stack_name, state_dir=state_dir)


def _local_api(args: argparse.Namespace) -> Any:
    """The local service's API (started if it is not running), as the deployed stack's API is used."""
    from attune_cli.api_client import ApiBackend
    from attune_cli.service import ensure_service

    info = ensure_service(state_dir(args))
    return ApiBackend(info.url, info.token, poll_seconds=0.2)


def _backend(args: argparse.Namespace) -> AbstractContextManager[Any]:
    """The API when an API URL is configured, else the deployed stack by name, else the local stack."""
    from attune_cli.api_client import ApiBackend, api_settings

    explicit = getattr(args, "api_url", None) is None and (args.stack_name or args.state_dir)
    if not explicit:  # an explicit --stack-name or --state-dir wins over ATTUNE_API_URL and the config file
        url, token = api_settings(getattr(args, "api_url", None), getattr(args, "token", None))
        if url:
            return nullcontext(ApiBackend(url, token))
    if args.stack_name or in_process():
        return open_backend(stack_name=args.stack_name, state_dir=state_dir(args))
    return nullcontext(_local_api(args))


def _source(text: str) -> str:
    """Local archive paths become absolute (the stack may run elsewhere); others pass unchanged."""
    path = Path(text).expanduser()
    if "://" not in text and (path.suffix in {".gz", ".tgz", ".zip"} or os.sep in text) and path.exists():
        return str(path.resolve())
    return text


def install_request(args: argparse.Namespace) -> Any:
    """The InstallRequest of ``install``, ``plan`` and ``lock`` (pydantic's ValidationError if invalid)."""
    from attune_packs.models import InstallRequest

    registry = args.registry or os.environ.get("ATTUNE_REGISTRY")
    if registry and "://" not in registry:
        registry = str(Path(registry).expanduser().resolve())
    return InstallRequest(
        packs=[_source(s) for s in args.sources],
        registry_url=registry,
        skip_dependencies=args.skip_dependencies,
        skip_env_build=args.skip_env_build,
        skip_tests=getattr(args, "skip_tests", False),
        skip_validation=args.skip_validation,
        force=args.force,
        force_rebuild=getattr(args, "force_rebuild", False),
        skip_python=args.skip_python,
        skip_nodejs=args.skip_nodejs,
        python_version=args.python_version,
        nodejs_version=args.nodejs_version,
        allow_unpinned=args.allow_unpinned,
    )


def cmd_install(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    if not args.sources and not args.locked:
        print("attune-packs: give SOURCE... or --locked FILE", file=sys.stderr)
        return EXIT_USAGE
    if args.locked and not args.sources:
        args.sources = plan_commands.lock_sources(args.locked)
    try:
        request = install_request(args)
    except ValidationError as exc:
        print(f"attune-packs: invalid request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = render.Progress(enabled=not args.quiet, stream=sys.stderr)
    with _backend(args) as backend:
        if args.locked:  # verified before anything starts: LOCK_MISMATCH names what moved
            request, execution = plan_commands.start_locked(backend, request, args.locked)
        else:
            execution = backend.start_install(request)
        progress.started(execution.name)
        result = backend.follow(execution.arn, progress.event)
        if args.lock_out and result.status == "SUCCEEDED":
            plan_commands.write_installation_lock(backend, request, execution.name, result, args.lock_out)
    report = render.install_report(execution.name, result)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render.install_summary(report))
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(report["outcome"], EXIT_FAILED)


def cmd_status(args: argparse.Namespace) -> int:
    with _backend(args) as backend:
        result = backend.follow(backend.execution_arn(args.installation_id), lambda _e: None, timeout=0)
    report = render.install_report(args.installation_id, result)
    print(render.json_text(report) if args.json else render.install_summary(report))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with _backend(args) as backend:
        packs = backend.list_packs()
    print(render.json_text(packs) if args.json else render.pack_table(packs))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from attune_packs.errors import NotFoundError

    with _backend(args) as backend:
        try:
            pack = backend.show_pack(args.ref)
        except NotFoundError as exc:
            print(f"attune-packs: {exc.message}", file=sys.stderr)
            return EXIT_FAILED
    print(render.json_text(pack, default=str) if args.json else render.pack_details(pack))
    return EXIT_OK


def _registry_error(exc: Exception) -> int:
    from attune_packs.errors import AttuneError, InvalidRequestError

    assert isinstance(exc, AttuneError)
    print(f"attune-packs: {exc.error_code}: {exc.message}", file=sys.stderr)
    invalid = isinstance(exc, InvalidRequestError) or exc.error_code == InvalidRequestError.default_code
    return EXIT_USAGE if invalid else EXIT_FAILED


def cmd_remove(args: argparse.Namespace) -> int:
    from attune_packs.errors import AttuneError

    with _backend(args) as backend:
        try:
            result = backend.remove_pack(args.ref, force=args.force)
        except AttuneError as exc:
            return _registry_error(exc)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        forced = f"; forced although {', '.join(result['dependents'])} depend(s) on it" if result["forced"] else ""
        print(
            f"removed {result['pack_ref']} {result['removed_version']} ({result['components_removed']} component "
            f"item(s) deleted; version history kept{forced})"
        )
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from attune_packs.errors import AttuneError

    with _backend(args) as backend:
        try:
            result = backend.rollback_pack(args.ref, args.version, force=args.force)
        except AttuneError as exc:
            return _registry_error(exc)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["status"] == "unchanged":
        print(f"{result['pack_ref']} {result['to_version']} is already current")
    else:
        how = "components registered again from its archive" if result["rebuilt_from_archive"] else "pointer flip"
        print(f"rolled back {result['pack_ref']} {result['from_version']} -> {result['to_version']} ({how})")
    return EXIT_OK


def _components_table(page: dict[str, object]) -> str:
    components = page["components"]
    assert isinstance(components, list)
    if not components:
        return f"no {page['type']} installed"
    rows = [("REF", "VERSION", "RUNNER", "DESCRIPTION")]
    for c in components:
        runner = c.get("runner_type") or c.get("trigger_ref") or ""
        rows.append((str(c["ref"]), str(c["pack_version"]), str(runner), str(c.get("description") or "")[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    if page.get("next_cursor"):
        lines.append(f"(more: --cursor {page['next_cursor']})")
    return "\n".join(lines)


def cmd_components(args: argparse.Namespace) -> int:
    from attune_packs.errors import AttuneError

    with _backend(args) as backend:
        try:
            page = backend.list_components(args.type, limit=args.limit, cursor=args.cursor)
        except AttuneError as exc:
            return _registry_error(exc)
    print(render.json_text(page, default=str) if args.json else _components_table(page))
    return EXIT_OK


def cmd_upload(args: argparse.Namespace) -> int:
    archive = Path(args.file).expanduser()
    if not archive.is_file() or not archive.name.endswith((".tar.gz", ".tgz", ".zip")):
        print(f"attune-packs: {archive} is not a .tar.gz, .tgz or .zip file", file=sys.stderr)
        return EXIT_USAGE
    progress = render.Progress(enabled=not args.quiet, stream=sys.stderr)
    with _backend(args) as backend:
        installation_id = backend.upload(archive)
        progress.started(f"{installation_id} (started by the upload of {archive.name})")
        backend.wait_until_started(installation_id)
        result = backend.follow(backend.execution_arn(installation_id), progress.event)
    report = render.install_report(installation_id, result)
    print(json.dumps(report, indent=2) if args.json else render.install_summary(report))
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(report["outcome"], EXIT_FAILED)


def _api_only(args: argparse.Namespace) -> Any:
    """The API backend (test runs are started and read through the API), or None after a message."""
    from attune_cli.api_client import ApiBackend, api_settings

    url, token = api_settings(getattr(args, "api_url", None), getattr(args, "token", None))
    if not url:
        print(
            "attune-packs: pack tests go through the API: give --api-url (or ATTUNE_API_URL); "
            "locally, run 'attune-packs local serve' first",
            file=sys.stderr,
        )
        return None
    return ApiBackend(url, token)


def _tests_table(page: dict[str, Any]) -> str:
    lines = [f"{'started':<26} {'version':<10} {'trigger':<8} {'status':<8} {'passed':>7} {'failed':>7}  id"]
    for run in page["executions"]:
        lines.append(
            f"{(run.get('started_at') or '')[:25]:<26} {run['pack_version']:<10} {run['trigger']:<8} "
            f"{run['status']:<8} {run['passed']:>7} {run['failed']:>7}  {run['id']}"
        )
    lines.append(f"{page['total']} execution(s) of {page['pack_ref']}'s tests")
    return "\n".join(lines)


def cmd_tests(args: argparse.Namespace) -> int:
    from attune_packs.errors import AttuneError

    backend = _api_only(args)
    if backend is None:
        return EXIT_USAGE
    try:
        page = backend.test_history(args.ref, page=args.page, page_size=args.page_size)
    except AttuneError as exc:
        return _registry_error(exc)
    print(json.dumps(page, indent=2, default=str) if args.json else _tests_table(page))
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from attune_packs.errors import AttuneError

    backend = _api_only(args)
    if backend is None:
        return EXIT_USAGE
    try:
        execution = backend.test_pack(args.ref)["execution"]
        deadline = time.monotonic() + args.timeout
        while args.wait and execution["status"] == "running" and time.monotonic() < deadline:
            time.sleep(2)
            execution = backend.test_execution(args.ref, execution["id"])
    except AttuneError as exc:
        return _registry_error(exc)
    if args.json:
        print(json.dumps(execution, indent=2, default=str))
    else:
        print(
            f"{args.ref} {execution['pack_version']}: tests {execution['status']} "
            f"({execution['passed']} passed, {execution['failed']} failed) [{execution['id']}]"
        )
    return {"passed": EXIT_OK, "running": EXIT_OK}.get(execution["status"], EXIT_FAILED)


def cmd_token(args: argparse.Namespace) -> int:
    """Tokens through the API (admin token), or directly in the table for bootstrap."""
    from attune_cli.api_client import ApiBackend, api_settings
    from attune_packs.errors import AttuneError
    from attune_packs.services import tokens

    direct = args.api_url is None and (args.stack_name or args.state_dir)
    url, token = (None, None) if direct else api_settings(args.api_url, args.token)
    try:
        api = ApiBackend(url, token) if url else None
        if api is None and not args.stack_name and not in_process():
            api = _local_api(args)  # the local service: its own admin token
        if api is not None:
            if args.action == "create":
                result: Any = api.tokens(
                    "POST", json={"name": args.name, "scopes": args.scopes, "ttl_days": args.ttl_days}
                )
            elif args.action == "list":
                result = api.tokens("GET")
            else:
                result = api.tokens("DELETE", f"/{args.token_id}")
        else:
            with open_backend(stack_name=args.stack_name, state_dir=state_dir(args)) as backend:
                if args.action == "create":
                    created = tokens.create_token(
                        backend.table, name=args.name, scopes=args.scopes, ttl_days=args.ttl_days
                    )
                    result = {"token": created.token, **created.info.model_dump()}
                elif args.action == "list":
                    result = [t.model_dump() for t in tokens.list_tokens(backend.table)]
                else:
                    result = tokens.revoke_token(backend.table, args.token_id).model_dump()
    except AttuneError as exc:
        return _registry_error(exc)
    if args.json or args.action != "list":
        print(json.dumps(result, indent=2))
        if args.action == "create" and not args.json:
            print("store the token now: it is not shown again", file=sys.stderr)
    else:
        for t in result:
            state = "revoked" if t.get("revoked_at") else f"expires {t.get('expires_at') or 'never'}"
            print(f"{t['token_id']}  {t['name']:<20} {','.join(t['scopes']):<20} {state}")
    return EXIT_OK


def _add_test_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    tests = sub.add_parser("tests", parents=[common], help="list a pack's test executions, newest first (API)")
    tests.add_argument("ref", metavar="REF", help="an installed pack")
    tests.add_argument("--page", type=int, default=1)
    tests.add_argument("--page-size", type=int, default=20)
    tests.set_defaults(func=cmd_tests)

    test = sub.add_parser("test", parents=[common], help="run an installed pack's tests again (API)")
    test.add_argument("ref", metavar="REF", help="an installed pack")
    test.add_argument("--no-wait", dest="wait", action="store_false", help="answer once the run has started")
    test.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the result (default 1800)")
    test.set_defaults(func=cmd_test)


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes: where it runs, and JSON output."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    common.add_argument(
        "--stack-name",
        metavar="NAME",
        default=os.environ.get("ATTUNE_STACK_NAME"),
        help="use the stack deployed with this name on AWS (default: the local stack)",
    )
    common.add_argument("--state-dir", metavar="DIR", help="local stack state folder (default .attune/local)")
    common.add_argument("--api-url", metavar="URL", help="a deployed stack's API (ApiUrl output; env ATTUNE_API_URL)")
    common.add_argument("--token", metavar="TOKEN", help="API bearer token (env ATTUNE_TOKEN)")
    return common


def _add_install(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    install = sub.add_parser(
        "install",
        parents=[common],
        help="install packs and their dependencies",
        description="Install packs: download, resolve dependencies, build environments, register.",
    )
    install.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="registry name (slack, slack@2.1.0, 'slack@>=2,<3'), s3://bucket/key, or a local archive",
    )
    install.add_argument("--registry", metavar="INDEX", help="registry index.json (path, s3:// or https://)")
    install.add_argument("--skip-dependencies", action="store_true", help="do not download missing dependencies")
    install.add_argument("--skip-env-build", action="store_true", help="register without building environments")
    install.add_argument("--skip-tests", action="store_true", help="do not run pack tests")
    install.add_argument("--skip-validation", action="store_true", help="skip strict (non-safety) validation")
    install.add_argument("--force", action="store_true", help="allow downgrades and replacing a version's content")
    install.add_argument("--force-rebuild", action="store_true", help="rebuild environments even when cached")
    install.add_argument("--skip-python", action="store_true", help="build no Python environments")
    install.add_argument("--skip-nodejs", action="store_true", help="build no Node.js environments")
    install.add_argument("--allow-unpinned", action="store_true", help="accept registry entries without checksum")
    install.add_argument("--python-version", default="3.12", help="Python version of the environments (3.12)")
    install.add_argument("--nodejs-version", default="20", help="Node.js major version of the environments (20)")
    install.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    install.set_defaults(func=cmd_install)
    return install


def _add_registry_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Reading and changing what is installed: status, list, show, remove, rollback, components, upload."""
    status = sub.add_parser("status", parents=[common], help="show an installation's state and results")
    status.add_argument("installation_id")
    status.set_defaults(func=cmd_status)

    listing = sub.add_parser("list", parents=[common], help="list installed packs")
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", parents=[common], help="show one pack, its components and history")
    show.add_argument("ref")
    show.set_defaults(func=cmd_show)

    remove = sub.add_parser(
        "remove",
        parents=[common],
        help="remove an installed pack (its version history is kept)",
        description="Remove a pack: refused while installed packs depend on it, or for a system pack, unless --force.",
    )
    remove.add_argument("ref")
    remove.add_argument(
        "--force", action="store_true", help="remove it although installed packs depend on it, or it is a system pack"
    )
    remove.set_defaults(func=cmd_remove)

    rollback = sub.add_parser(
        "rollback",
        parents=[common],
        help="make a previously registered version of a pack current again",
        description="Roll a pack back to VERSION (default: the version current before this one). Its archive and "
        "environments must still be stored.",
    )
    rollback.add_argument("ref")
    rollback.add_argument("version", nargs="?", help="the version to restore (default: the previous one)")
    rollback.add_argument("--force", action="store_true", help="even if dependencies or dependents disagree")
    rollback.set_defaults(func=cmd_rollback)

    components = sub.add_parser(
        "components", parents=[common], help="list the installed components of one type across packs"
    )
    # the stack checks the type (INVALID_REQUEST): importing the models here would cost every command
    components.add_argument("type", metavar="TYPE", help="a component type: actions, sensors, triggers, rules, ...")
    components.add_argument("--limit", type=int, default=100, help="at most this many per page (default 100)")
    components.add_argument(
        "--cursor", metavar="CURSOR", help="continue where a previous page ended (the cursor it printed)"
    )
    components.set_defaults(func=cmd_components)

    upload = sub.add_parser("upload", parents=[common], help="upload an archive and follow the installation it starts")
    upload.add_argument("file", metavar="FILE", help="a pack archive (.tar.gz, .tgz, .zip)")
    upload.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    upload.set_defaults(func=cmd_upload)


def _add_token_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    token = sub.add_parser("token", help="manage API tokens (admin)")
    token_sub = token.add_subparsers(dest="action", required=True)
    create = token_sub.add_parser("create", parents=[common], help="create a token (shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", nargs="+", choices=["read", "install", "admin"], default=["read"])
    create.add_argument("--ttl-days", type=int, default=90)
    create.set_defaults(func=cmd_token)
    token_sub.add_parser("list", parents=[common], help="list tokens (never their secrets)").set_defaults(
        func=cmd_token
    )
    revoke = token_sub.add_parser("revoke", parents=[common], help="revoke a token")
    revoke.add_argument("token_id")
    revoke.set_defaults(func=cmd_token)


# The commands each group of parsers below adds (main builds only the group of the command it runs).
COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "install": ("install", "plan", "lock"),
    "registry": ("status", "list", "show", "remove", "rollback", "components", "upload"),
    "tests": ("tests", "test"),
    "token": ("token",),
    "local": ("local",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; with ``command``, only those of its group (building all of them
    costs a read command a tenth of its time): a command line that starts with ``command`` parses
    the same either way."""

    def wanted(group: str) -> bool:
        return command is None or command in COMMAND_GROUPS[group]

    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="attune-packs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  attune-packs install --registry examples/index.json notify_slack\n"
        "  attune-packs install ./my_pack.tar.gz s3://bucket/uploads/other.zip\n"
        "  attune-packs list\n  attune-packs show http_tools --json",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    install = _add_install(sub, common) if wanted("install") else None
    if wanted("registry"):
        _add_registry_commands(sub, common)
    if wanted("tests"):
        _add_test_commands(sub, common)
    if wanted("token"):
        _add_token_commands(sub, common)
    if wanted("local"):
        local_commands.add_parsers(sub, common)
    if install is not None:
        plan_commands.add_parsers(sub, common, install)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` starts with, if it is one (else every parser is built: for the
    top-level help, or to name the commands a mistyped one is not)."""
    first = argv[0] if argv else ""
    return first if any(first in names for names in COMMAND_GROUPS.values()) else None


def main(argv: list[str] | None = None) -> int:
    from attune_packs.errors import AttuneError

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except AttuneError as exc:  # the API refused (401, 403, 4xx) or the registry did
        print(f"attune-packs: {exc.message} [{exc.error_code}]", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # urllib's URLError, requests' RequestException, a refused connection
        print(f"attune-packs: cannot reach the API: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RuntimeError as exc:
        print(f"attune-packs: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
