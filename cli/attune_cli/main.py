"""attune-packs: install Attune / StackStorm packs and read the pack registry.

Runs on the embedded local AWS stack by default (state kept in .attune/local), or against a
stack deployed with `sam deploy` when given --stack-name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from attune_cli import render
from attune_cli.backends import open_backend

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_USAGE = 0, 1, 2, 64


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or os.environ.get("ATTUNE_LOCAL_STATE") or ".attune/local").resolve()


def _source(text: str) -> str:
    """Local archive paths become absolute (the stack may run elsewhere); others pass unchanged."""
    path = Path(text).expanduser()
    if "://" not in text and (path.suffix in {".gz", ".tgz", ".zip"} or os.sep in text) and path.exists():
        return str(path.resolve())
    return text


def cmd_install(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from attune_packs.models import InstallRequest

    registry = args.registry or os.environ.get("ATTUNE_REGISTRY")
    if registry and "://" not in registry:
        registry = str(Path(registry).expanduser().resolve())
    try:
        request = InstallRequest(
            packs=[_source(s) for s in args.sources],
            registry_url=registry,
            skip_dependencies=args.skip_dependencies,
            skip_env_build=args.skip_env_build,
            skip_tests=args.skip_tests,
            skip_validation=args.skip_validation,
            force=args.force,
            force_rebuild=args.force_rebuild,
            python_version=args.python_version,
            nodejs_version=args.nodejs_version,
            allow_unpinned=args.allow_unpinned,
        )
    except ValidationError as exc:
        print(f"attune-packs: invalid request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = render.Progress(enabled=not args.quiet, stream=sys.stderr)
    with open_backend(stack_name=args.stack_name, state_dir=_state_dir(args)) as backend:
        execution = backend.start_install(request)
        progress.started(execution.name)
        result = backend.follow(execution.arn, progress.event)
    report = render.install_report(execution.name, result)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render.install_summary(report))
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(report["outcome"], EXIT_FAILED)


def cmd_status(args: argparse.Namespace) -> int:
    with open_backend(stack_name=args.stack_name, state_dir=_state_dir(args)) as backend:
        result = backend.follow(backend.execution_arn(args.installation_id), lambda _e: None, timeout=0)
    report = render.install_report(args.installation_id, result)
    print(json.dumps(report, indent=2) if args.json else render.install_summary(report))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with open_backend(stack_name=args.stack_name, state_dir=_state_dir(args)) as backend:
        packs = backend.list_packs()
    print(json.dumps(packs, indent=2) if args.json else render.pack_table(packs))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from attune_packs.errors import NotFoundError

    with open_backend(stack_name=args.stack_name, state_dir=_state_dir(args)) as backend:
        try:
            pack = backend.show_pack(args.ref)
        except NotFoundError as exc:
            print(f"attune-packs: {exc.message}", file=sys.stderr)
            return EXIT_FAILED
    print(json.dumps(pack, indent=2, default=str) if args.json else render.pack_details(pack))
    return EXIT_OK


def cmd_local_reset(args: argparse.Namespace) -> int:
    from attune_cli.local_stack import reset_state

    state = _state_dir(args)
    reset_state(state)
    print(f"local stack state removed ({state})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    common.add_argument(
        "--stack-name",
        metavar="NAME",
        default=os.environ.get("ATTUNE_STACK_NAME"),
        help="use the stack deployed with this name on AWS (default: the local stack)",
    )
    common.add_argument("--state-dir", metavar="DIR", help="local stack state folder (default .attune/local)")

    parser = argparse.ArgumentParser(
        prog="attune-packs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  attune-packs install --registry examples/index.json notify_slack\n"
        "  attune-packs install ./my_pack.tar.gz s3://bucket/uploads/other.zip\n"
        "  attune-packs list\n  attune-packs show http_tools --json",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    install = sub.add_parser(
        "install",
        parents=[common],
        help="install packs and their dependencies",
        description="Install packs: download, resolve dependencies, build environments, register.",
    )
    install.add_argument(
        "sources",
        nargs="+",
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
    install.add_argument("--allow-unpinned", action="store_true", help="accept registry entries without checksum")
    install.add_argument("--python-version", default="3.12", help="Python version of the environments (3.12)")
    install.add_argument("--nodejs-version", default="20", help="Node.js major version of the environments (20)")
    install.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    install.set_defaults(func=cmd_install)

    status = sub.add_parser("status", parents=[common], help="show an installation's state and results")
    status.add_argument("installation_id")
    status.set_defaults(func=cmd_status)

    listing = sub.add_parser("list", parents=[common], help="list installed packs")
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", parents=[common], help="show one pack, its components and history")
    show.add_argument("ref")
    show.set_defaults(func=cmd_show)

    local = sub.add_parser("local", help="manage the embedded local stack")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    reset = local_sub.add_parser("reset", parents=[common], help="forget every installed pack and built environment")
    reset.set_defaults(func=cmd_local_reset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:
        print(f"attune-packs: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
