"""``refnode init``, ``serve`` and ``info``: setting up a node, running it, and asking it
who it is.

``init`` and ``serve`` work on the data folder directly (the keys, the database, the
configuration and the admin token), not through the admin API: before ``init`` there is
no node to ask, and ``serve`` is what answers. ``info`` asks the running node.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from node.base.config import Config
from node.cli.address import clear_serving, write_serving
from node.cli.client import CliError
from node.cli.output import Command, Context, Group, print_fields


def cmd_init(ctx: Context) -> int:
    from node.base.key_files import KeyStoreError
    from node.cli.setup import TOKEN_FILE, init_node
    from node.http.app import passphrase_from_env

    a = ctx.args
    config = _init_config(ctx)
    if (config.keys_dir.exists() and any(config.keys_dir.iterdir())) or (config.data_dir / TOKEN_FILE).exists():
        raise CliError(f"{config.data_dir.absolute()} already holds a node; refusing to overwrite it",
                       code="already_initialised")
    admin_name = a.admin_name or a.admin_email.split("@")[0]
    try:
        result = init_node(config, admin_email=a.admin_email, admin_name=admin_name,
                           passphrase=passphrase_from_env(config, ctx.env))
    except (FileExistsError, KeyStoreError, OSError) as exc:
        raise CliError(str(exc), code="init_failed") from None
    data = {"node_id": result.node_id, "fingerprint": result.fingerprint, "org_name": config.org_name,
            "public_url": config.public_url, "data_dir": str(config.data_dir.absolute()),
            "config_path": str(config.config_path.absolute()), "token_path": str(result.token_path.absolute()),
            "password_link": result.password_link}

    def human() -> None:
        print(f"Initialised a node for {config.org_name}.")
        print_fields([("node id", result.node_id), ("URL", config.public_url),
                      ("config", data["config_path"]), ("admin token", f"{data['token_path']} (mode 0600, keep it secret)")])
        print()
        print(f"  FINGERPRINT:  {result.fingerprint}")
        print()
        print("Read the fingerprint to the admins you connect with; they must see the same one.")
        print()
        print(f"{admin_name} chooses a console password with this one-time link (start the node first):")
        print(f"  {result.password_link}")
        print(f"Start the node with: refnode --data-dir {config.data_dir} serve")

    ctx.emit(data, human)
    return 0


def _init_config(ctx: Context) -> Config:
    """The configuration as loaded, with ``init``'s options on top. A ``--config`` file
    that does not exist yet is where ``init`` writes the configuration."""
    a = ctx.args
    path = ctx.config_path
    target = path if path is not None and not path.exists() else None
    if target is not None:
        ctx.args.config = None
    base = ctx.config()
    options = {"org_name": a.org_name, "host": a.host, "port": a.port, "public_url": a.public_url}
    given = {k: v for k, v in options.items() if v is not None}
    settings = base.model_dump()
    if a.public_url is None and ("host" in given or "port" in given):
        derived = Config(host=base.host, port=base.port).public_url
        if base.public_url == derived:  # not set explicitly: derive it again
            settings.pop("public_url")
    try:
        config = Config(**(settings | given))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "options"
        raise CliError(f"{where}: {error['msg'].removeprefix('Value error, ')}", code="invalid") from None
    source = target.absolute() if target is not None else base._source
    config._source = source
    return config


def cmd_serve(ctx: Context) -> int:
    from node.base.key_files import KeyStoreError
    from node.base.keystore import KeyStore
    from node.base.logs import configure_logging
    from node.http.app import passphrase_from_env
    from node.http.serve import ServeError, serve
    from node.web.site import create_site

    # '--port' and '--host' win as REFNODE_PORT and REFNODE_HOST would: a public_url that
    # was not set on purpose follows them.
    for option, variable in (("port", "REFNODE_PORT"), ("host", "REFNODE_HOST")):
        if getattr(ctx.args, option, None) is not None:
            ctx.env[variable] = str(getattr(ctx.args, option))
    config = ctx.config()
    if not config.keys_dir.is_dir():
        raise CliError(f"no node in {config.data_dir.absolute()}: run 'refnode init' first", code="not_initialised")
    passphrase = passphrase_from_env(config, ctx.env)
    try:
        keys = KeyStore.load(config.keys_dir, passphrase)
    except KeyStoreError as exc:
        raise CliError(str(exc), code="keys") from None
    configure_logging(config.log_format, config.log_level)
    banner = {"event": "serving", "org_name": config.org_name, "host": config.host, "port": config.port,
              "public_url": config.public_url, "node_id": keys.node_id, "fingerprint": keys.fingerprint,
              "inbox_workers": config.inbox_workers}

    def human() -> None:
        fronts = f", {config.inbox_workers} inbox front(s)" if config.inbox_workers else ""
        print(f"refnode: {config.org_name} listening on {config.host}:{config.port}{fronts}, "
              f"public URL {config.public_url}")
        print(f"refnode: console at {config.public_url}/")
        print(f"refnode: fingerprint {keys.fingerprint}; Ctrl+C or SIGTERM stops it")

    def listening() -> None:
        write_serving(config)  # where the other commands find us
        ctx.emit(banner, human)
        sys.stdout.flush()

    try:
        serve(config, passphrase=passphrase, on_listening=listening, make_app=create_site)
    except ServeError as exc:
        raise CliError(str(exc), code=exc.code) from None
    finally:
        clear_serving(config)
    ctx.emit({"event": "stopped"}, lambda: print("refnode: stopped"))
    return 0


def _fronts_line(fronts: dict[str, int] | None) -> list[tuple[str, str]]:
    if not fronts:
        return []
    return [("inbox fronts", f"{fronts['connected']} of {fronts['configured']} running")]


def cmd_info(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/node")
    ctx.emit(data, lambda: print_fields([("name", data["name"]), ("node id", data["node_id"]),
                                         ("fingerprint", data["fingerprint"]), ("URL", data["base_url"]),
                                         ("suites", ", ".join(data["suites"])),
                                         *_fronts_line(data.get("inbox_fronts"))], indent=""))
    return 0


# --- the parser ------------------------------------------------------------------------


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0 to 65535)")
    return port


def _email(value: str) -> str:
    from node.cli.setup import check_email

    try:
        return check_email(value.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None



def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``init``, ``serve`` and ``info`` to the parser."""
    p = command(commands, "init", cmd_init, "create a node: data folder, keys, database, first admin")
    p.add_argument("--org-name", required=True, help="your organisation's name, shown to peers")
    p.add_argument("--admin-email", required=True, type=_email, help="the first admin's email, e.g. admin@summit.example")
    p.add_argument("--admin-name", help="default: the part of the email before @")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port to listen on (default 8701)")
    p.add_argument("--public-url", help="URL peers use to reach this node (default http://HOST:PORT)")
    p = command(commands, "serve", cmd_serve, "run the node (HTTP server and delivery) until stopped")
    p.add_argument("--port", type=_port, help="port to listen on (instead of the configured one; as REFNODE_PORT)")
    p.add_argument("--host", help="address to listen on (as REFNODE_HOST)")
    command(commands, "info", cmd_info, "show this node's id, fingerprint, name and URL")
