"""``refnode``: set up, run and administer a node from a terminal.

This module builds the parser and runs the command asked for. The commands live in one
module each per subject, imported only for the command asked for (:data:`COMMANDS`; all of
them for ``--help``), and each module's ``add_commands`` adds its own to the parser
(through the hooks described in :mod:`node.cli.output`, which also holds the
:class:`~node.cli.output.Context` a command runs in and the way it prints):

- :mod:`node.cli.running`: ``init``, ``serve``, ``info``
- :mod:`node.cli.connections`: ``invite``, ``connect``, ``request``, ``connections``
- :mod:`node.cli.referrals`: ``refer``, ``referrals``
- :mod:`node.cli.delivery`: ``outbox``, ``receipts verify``
- :mod:`node.cli.admin`: ``keys``, ``users``, ``token``
- :mod:`node.cli.workflows`, :mod:`node.cli.contacts`, :mod:`node.cli.deals`: the CRM
- :mod:`node.cli.referring`: ``deals refer``, ``deferred``, ``opportunities``
- :mod:`node.cli.reports`: ``reports``
- :mod:`node.cli.csv_files`: ``export``, ``import``
- :mod:`node.cli.backup`: ``backup``, ``restore``
- :mod:`node.cli.conformance`: ``conformance`` (the protocol suite, :mod:`conformance`)

Every command except ``init``, ``serve``, ``receipts verify``, ``backup`` and ``restore``
is a client of the node's admin API (see :mod:`node.cli.client`): it sends the request the
API documents and shows the answer, so the CLI can never do something the API would refuse.
``init`` creates a node, ``serve`` runs it, ``receipts verify`` reads the database directly
so that the evidence can be checked with the server stopped, and ``backup`` and ``restore``
work on the data folder itself.

Global options (before or after the command): ``--config PATH``, ``--data-dir DIR``,
``--json``; ``refnode --version``. The admin token comes from ``REFNODE_TOKEN`` or
``<data_dir>/admin-token``; the node, from where its ``serve`` listens (see
:mod:`node.cli.address`). Options that take an id take a name too (:mod:`node.cli.names`).
Exit status: 0 on success, 1 when the node or the API says no, 2 for a usage error, 141
when the reader of the output went away (``refnode workflows list | head -1``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from node.cli.client import CliError
from node.cli.output import Context

#: The modules of :mod:`node.cli` that add commands, in the order ``refnode --help`` lists
#: them.
COMMAND_MODULES = ("running", "connections", "referrals", "delivery", "admin",
                   "workflows", "contacts", "deals", "referring", "reports", "csv_files", "backup", "conformance")
#: Each command as typed first, and the modules that add it (or its subcommands): a command
#: loads only its own modules (``serve`` none of the API client's, the archive's or the
#: conformance suite's); ``refnode --help`` and a word that is no command load them all.
#: tests/node/test_cli_lazy.py keeps it true to what the modules add.
COMMANDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("init", "serve", "info"), ("running",)),
    **dict.fromkeys(("invite", "connect", "request", "connections"), ("connections",)),
    **dict.fromkeys(("refer", "referrals"), ("referrals",)),
    **dict.fromkeys(("outbox", "receipts"), ("delivery",)),
    **dict.fromkeys(("keys", "users", "token"), ("admin",)),
    "workflows": ("workflows",),
    "contacts": ("contacts",),
    "deals": ("deals", "referring"),
    **dict.fromkeys(("deferred", "opportunities"), ("referring",)),
    "reports": ("reports",),
    **dict.fromkeys(("export", "import"), ("csv_files",)),
    **dict.fromkeys(("backup", "restore"), ("backup",)),
    "conformance": ("conformance",),
}
#: The global options that take a value (see :func:`_global_options`).
_VALUED_OPTIONS = ("--config", "--data-dir")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes. Subcommands repeat them with SUPPRESS defaults,
    so they work before or after the command without overriding each other."""
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="configuration file (default: <data_dir>/refnode.toml)")
    parser.add_argument("--data-dir", metavar="DIR", default=default,
                        help="the node's data folder (same as REFNODE_DATA_DIR)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="print machine-readable JSON")


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The parser with the commands of ``modules`` (by default, all of them)."""
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(prog="refnode", description="Run and administer a referral node.")
    parser.add_argument("--version", action=_Version, help="show program's version number and exit")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    groups: dict[str, Any] = {}

    def group(name: str, help: str) -> Any:
        """A command with subcommands; asking again for a name gives the same group."""
        if name not in groups:
            sub = commands.add_parser(name, help=help, description=help, parents=[common])
            groups[name] = sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return groups[name]

    def command(where: Any, name: str, fn: Callable[[Context], int], help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = where.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(handler=fn)
        return sub

    for name in modules:
        importlib.import_module(f"node.cli.{name}").add_commands(commands, group, command)
    return parser


def command_word(argv: Sequence[str]) -> str | None:
    """The command as typed first (``serve`` in ``--config x.toml serve --port 1``), or
    None when there is none before ``--help`` or ``--version``."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED_OPTIONS:
            skip = True
        elif arg == "--" or arg in ("-h", "--help", "--version"):
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: the command's own modules only, or all of them."""
    word = command_word(argv)
    return build_parser(COMMANDS[word] if word in COMMANDS else COMMAND_MODULES)


def command_names(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Every command as typed, e.g. ``["init", ..., "invite create", ...]``."""
    names: list[str] = []

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    full = f"{prefix} {name}".strip()
                    if any(isinstance(x, argparse._SubParsersAction) for x in sub._actions):
                        walk(sub, full)
                    else:
                        names.append(full)

    walk(parser or build_parser(), "")
    return names


class _Version(argparse.Action):
    """``--version``: the version is looked up when asked for, not each time a command runs."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"refnode {package_version()}")
        parser.exit()


def package_version() -> str:
    """The installed package's version (``pip install -e .`` counts)."""
    import importlib.metadata  # for --version only: not loaded by every command

    try:
        return importlib.metadata.version("referral-node")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at exit (help and --version too)
    except BrokenPipeError:
        # The reader went away (``refnode workflows list | head -1``): what it did not
        # read is not wanted. Nothing more may reach stdout, not even at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


def _run(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser_for(argv).parse_args(argv)
    env = dict(os.environ)
    if args.data_dir:
        env["REFNODE_DATA_DIR"] = args.data_dir
    ctx = Context(args, env)
    try:
        return int(args.handler(ctx))
    except CliError as exc:
        if ctx.as_json:
            print(json.dumps(exc.as_json(), indent=2))
        print(f"refnode: error: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
