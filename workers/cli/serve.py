"""The long-running commands: `orgstream receiver`, `worker`, `directory`, `console`, `dev`,
`demo`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from workers.cli.options import Commands, config_option, config_path, settings_of


def register(commands: Commands) -> None:
    receiver = commands.add_parser("receiver", help="serve the vendor callback endpoints")
    config_option(receiver)
    receiver.set_defaults(run=_receiver)

    worker = commands.add_parser("worker", help="apply events from the topic to the SCIM target")
    config_option(worker)
    worker.set_defaults(run=_worker)

    directory = commands.add_parser(
        "directory", help="serve each tenant's mirrored directory as a read-only SCIM 2.0 server"
    )
    config_option(directory)
    directory.set_defaults(run=_directory)

    console = commands.add_parser(
        "console", help="serve the operations console: history, runs, lag, dead letters"
    )
    config_option(console)
    console.set_defaults(run=_console)


def register_dev(commands: Commands) -> None:
    dev = commands.add_parser(
        "dev", help="run the whole stack on this machine (Tansu, scim2-server, receiver, worker)"
    )
    dev.add_argument(
        "--dir",
        type=Path,
        default=Path(".orgstream"),
        help="where the dev config and logs live (default .orgstream)",
    )
    dev.set_defaults(run=_dev)

    demo = commands.add_parser(
        "demo", help="dev stack + simulated WeCom: play a day of changes, compare the directories"
    )
    demo.add_argument("--dir", type=Path, default=Path(".orgstream/demo"))
    demo.set_defaults(run=_demo)


def _receiver(args: argparse.Namespace) -> int:
    from workers.cli.receiver_process import run_receiver

    run_receiver(settings_of(args), config_path(args))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from workers.cli.stack import run_worker

    asyncio.run(run_worker(settings_of(args)))
    return 0


def _directory(args: argparse.Namespace) -> int:
    from workers.cli.directory_process import run_directory

    asyncio.run(run_directory(settings_of(args)))
    return 0


def _console(args: argparse.Namespace) -> int:
    from workers.cli.console_process import run_console

    asyncio.run(run_console(settings_of(args), config_path(args)))
    return 0


def _dev(args: argparse.Namespace) -> int:
    from workers.cli.stack import run_all
    from workers.dev.local_stack import prepare_dev, run_dev

    return asyncio.run(run_dev(prepare_dev(args.dir), run_all))


def _demo(args: argparse.Namespace) -> int:
    from workers.cli.stack import run_all
    from workers.dev.demo import run_demo

    return asyncio.run(run_demo(args.dir, run_all))
