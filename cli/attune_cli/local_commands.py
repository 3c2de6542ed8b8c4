"""``attune-packs local …``: the embedded local stack's service (serve, start, stop, status, reset)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2


def state_dir(args: argparse.Namespace) -> Path:
    """The local stack's state folder: --state-dir, else ATTUNE_LOCAL_STATE, else .attune/local."""
    return Path(args.state_dir or os.environ.get("ATTUNE_LOCAL_STATE") or ".attune/local").resolve()


def cmd_local_serve(args: argparse.Namespace) -> int:
    """The local service in the foreground (Ctrl-C stops it); CLI commands use it while it runs."""
    from attune_cli.service import serve, service_info

    state = state_dir(args)
    running = service_info(state)
    if running is not None:
        where = f"pid {running.pid}, {running.url}"
        print(f"attune-packs: the local stack already runs for {state} ({where})", file=sys.stderr)
        return EXIT_FAILED

    def announce(url: str, stack: Any) -> None:
        print(f"Attune Pack Installer API on {url}/api/v1 (Ctrl-C to stop)", flush=True)
        if args.admin_token:
            from attune_packs.adapters.dynamodb import DynamoPackTable
            from attune_packs.services.tokens import create_token

            table = DynamoPackTable(stack.client("dynamodb"), stack.table)
            created = create_token(table, name="local-admin", scopes=["admin"], ttl_days=1)
            print(f"admin token (1 day): {created.token}", flush=True)

    serve(state, args.port, announce=announce)
    return EXIT_OK


def cmd_local_start(args: argparse.Namespace) -> int:
    from attune_cli.service import ensure_service

    info = ensure_service(state_dir(args), port=args.port)
    print(f"local stack running: {info.url}/api/v1 (pid {info.pid}, state {info.state_dir})")
    return EXIT_OK


def cmd_local_stop(args: argparse.Namespace) -> int:
    from attune_cli.service import stop_service

    info = stop_service(state_dir(args))
    print(f"local stack stopped (pid {info.pid}); state kept in {info.state_dir}" if info else "not running")
    return EXIT_OK


def cmd_local_status(args: argparse.Namespace) -> int:
    from attune_cli.service import service_info

    state = state_dir(args)
    info = service_info(state)
    status = {"running": info is not None, "state_dir": str(state)}
    if info is not None:
        status.update(pid=info.pid, url=f"{info.url}/api/v1")
    if args.json:
        print(json.dumps(status, indent=2))
    elif info is not None:
        print(f"local stack running: {info.url}/api/v1 (pid {info.pid}, state {state})")
    else:
        print(f"local stack not running (state {state})")
    return EXIT_OK if info is not None else EXIT_PARTIAL


def cmd_local_reset(args: argparse.Namespace) -> int:
    from attune_cli.local_stack import reset_state
    from attune_cli.service import stop_service

    state = state_dir(args)
    stop_service(state)
    reset_state(state)
    print(f"local stack state removed ({state})")
    return EXIT_OK


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    local = sub.add_parser("local", help="manage the embedded local stack")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    serve = local_sub.add_parser("serve", parents=[common], help="run the local stack in the foreground")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--admin-token", action="store_true", help="create and print a one-day admin token")
    serve.set_defaults(func=cmd_local_serve)
    start = local_sub.add_parser("start", parents=[common], help="start the local stack in the background")
    start.add_argument("--port", type=int, default=0, help="its port on 127.0.0.1 (default: any free port)")
    start.set_defaults(func=cmd_local_start)
    stop = local_sub.add_parser("stop", parents=[common], help="stop the local stack (its state is kept)")
    stop.set_defaults(func=cmd_local_stop)
    local_status = local_sub.add_parser("status", parents=[common], help="is the local stack running, and where")
    local_status.set_defaults(func=cmd_local_status)
    reset = local_sub.add_parser(
        "reset", parents=[common], help="stop the local stack and forget every installed pack and environment"
    )
    reset.set_defaults(func=cmd_local_reset)
