"""`epochscope`: run the embedded local stack, mint a dev token, or run the demo job.

epochscope up [--writers N] [--trainers N]  start Postgres, the broker, the API, writers and trainers; Ctrl-C stops
epochscope token --user alice   print a bearer token for the local stack (development only)
epochscope demo                 run the demo job end to end and print its predictions per round
epochscope reset                delete the local stack's data (its Postgres cluster included)
epochscope backup -o DIR        back a stopped stack up: its database and object store, together
epochscope restore DIR          make a new stack (--data-dir) from a backup; `epochscope up` then serves it
epochscope checkpoint download JOB [ROUND|best|final] -o DIR
                                a job's checkpoint, with a progress bar, unpacked and checked

A failure you can fix (a port in use, a folder owned by someone else, a stale lock, a full disk) is one
line on stderr and exit status 1.
"""

import argparse
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from rich.console import Console

from epochscope import backup as stack_backup
from epochscope import checkpoint_cli, demo
from epochscope.local_stack import LocalStack
from epochscope.stack_errors import StackError, explain_os_error
from epochscope_runtime.catalog import CatalogModel

DEFAULT_DATA_DIR = Path(".epochscope")
POSTGRES_DIR_HELP = (
    "where the Postgres cluster keeps its data (default: DATA_DIR/postgres, or, as root, a folder under "
    "/var/lib/epochscope that the unprivileged Postgres user owns)"
)
MODELS_HELP = "a JSON file with the model catalog to offer (a list of GET /v1/models entries; default: the demo model)"


def read_catalog(path: Path | None) -> list[CatalogModel] | None:
    """The catalog in a JSON file, or None for the default; a StackError naming the problem."""
    if path is None:
        return None
    try:
        return TypeAdapter(list[CatalogModel]).validate_json(path.read_bytes())
    except ValidationError as exc:
        raise StackError(
            f"{path} is not a model catalog: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}"
        ) from None


def up(args: argparse.Namespace) -> int:
    console = Console()
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a supervisor stopping us
        signal.signal(sig, lambda *_: stopping.set())
    stack = LocalStack(
        args.data_dir,
        api_port=args.api_port,
        writers=args.writers,
        trainers=args.trainers,
        postgres_dir=args.postgres_dir,
        models=read_catalog(args.models),
    )
    with console.status("starting Postgres, the broker and the services"):
        stack.start()
    try:
        console.print(f"[bold green]Epochscope is up[/] at {stack.api_url} (API docs: {stack.api_url}/docs)")
        console.print(f"  Postgres: {stack.postgres.display_url}")
        console.print(f"  broker: {stack.broker.bootstrap_servers}   Postgres data: {stack.postgres.home}")
        console.print(f"  logs: {stack.logs}   a token: epochscope token --user <you> --data-dir {args.data_dir}")
        console.print("Ctrl-C stops everything.")
        while not stopping.wait(1):
            dead = [p.name for p in stack.processes if not p.running()]
            if dead:
                console.print(f"[red]{', '.join(dead)} exited; see {stack.logs}")
                return 1
        return 0
    finally:
        with console.status("stopping"):
            stack.stop()


def token(args: argparse.Namespace) -> int:
    stack = LocalStack(args.data_dir)
    print(stack.mint_token(args.user, timedelta(hours=args.hours)))
    return 0


def reset(args: argparse.Namespace) -> int:
    stack = LocalStack(args.data_dir, postgres_dir=args.postgres_dir)
    stack.delete_data()
    print(f"deleted {args.data_dir} and its Postgres cluster in {stack.postgres.home}")
    return 0


def backup(args: argparse.Namespace) -> int:
    counts = stack_backup.backup(LocalStack(args.data_dir, postgres_dir=args.postgres_dir), args.output)
    print(f"backed {args.data_dir} up into {args.output} ({counts['objects_referenced']} objects referenced)")
    return 0


def restore(args: argparse.Namespace) -> int:
    stack_backup.restore(args.backup, args.data_dir, args.postgres_dir)
    print(f"restored {args.backup} into {args.data_dir}; start it with: epochscope up --data-dir {args.data_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="epochscope", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="run the local stack until Ctrl-C")
    up_parser.add_argument("--api-port", type=int, default=8000)
    up_parser.add_argument("--writers", type=int, default=1, help="writer replicas in one consumer group")
    up_parser.add_argument(
        "--trainers", type=int, default=1, help="trainers (one job each, on the CPU); the dispatcher shares them"
    )
    up_parser.add_argument("--models", type=Path, help=MODELS_HELP)
    token_parser = commands.add_parser("token", help="print a dev bearer token for the local stack")
    token_parser.add_argument("--user", required=True)
    token_parser.add_argument("--hours", type=float, default=12)
    commands.add_parser("demo", help="run the demo job end to end", add_help=False)
    checkpoint_cli.add_parser(commands)
    reset_parser = commands.add_parser("reset", help="delete the local stack's data, its Postgres cluster included")
    backup_parser = commands.add_parser("backup", help="back a stopped stack up (database and object store)")
    backup_parser.add_argument("-o", "--output", type=Path, required=True, help="a new folder for the backup")
    restore_parser = commands.add_parser("restore", help="make a new stack from a backup")
    restore_parser.add_argument("backup", type=Path, help="the backup's folder")
    for sub in (up_parser, token_parser, reset_parser, backup_parser, restore_parser):
        sub.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    for sub in (up_parser, reset_parser, backup_parser, restore_parser):
        sub.add_argument("--postgres-dir", type=Path, help=POSTGRES_DIR_HELP)
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "demo":
            return demo.main(rest)
        if args.command == "checkpoint" and not rest:
            return checkpoint_cli.download(args)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        commands_run = {"up": up, "token": token, "reset": reset, "backup": backup, "restore": restore}
        return commands_run[args.command](args)
    except StackError as exc:
        print(f"epochscope: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"epochscope: {explain_os_error(exc)}", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())
