"""``refnode backup FILE`` and ``refnode restore FILE --data-dir NEW``.

Both work on the data folder directly, not through the admin API. ``backup`` runs while
the node serves: the database is copied with SQLite's online backup API
(:mod:`node.storage.snapshot`), the rest of the folder read as it is, and the archive
(:mod:`node.cli.archive`) written beside the destination and renamed into place once
whole. ``--passphrase`` seals the whole archive (:mod:`node.base.sealed_stream`); the
passphrase comes from ``REFNODE_BACKUP_PASSPHRASE`` or is asked for at the terminal,
never from the command line (where other users see it, and shells keep it).

``restore`` refuses a folder that is not empty or where a node runs, checks the archive
against its manifest in a folder of its own next to the target, checks the database
(``PRAGMA quick_check``, a schema this release knows) and moves the folder into place
only then. The restored node is the same node, with the same keys: what its peers already
hold it may send again, and they answer with their first receipt (the protocol's
de-duplication); what it took before the backup, it answers again with its own.
"""

from __future__ import annotations

import datetime
import fcntl
import getpass
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from node.base.config import Config, ConfigError, load_config, write_default_config
from node.base.sealed_stream import (
    MAGIC,
    OpeningReader,
    SealedStreamError,
    SealingWriter,
    is_sealed,
)
from node.cli.archive import (
    CONFIG,
    DATABASE,
    ArchiveError,
    Member,
    extract,
    folder_members,
    member_from_bytes,
    member_from_file,
    write_archive,
)
from node.cli.client import CliError
from node.cli.output import Command, Context, Group, print_fields
from node.cli.progress import progress
from node.storage.integrity import DatabaseDamaged, check_database
from node.storage.snapshot import snapshot
from node.storage.sqlite import SchemaTooNew
from protocol.keys import fingerprint_of

PASSPHRASE_ENV = "REFNODE_BACKUP_PASSPHRASE"  # noqa: S105 (the name of a variable)
KEY_INDEX = "keys/index.json"


def read_passphrase(ctx: Context, *, confirm: bool) -> bytes:
    """The archive passphrase: from ``REFNODE_BACKUP_PASSPHRASE``, else asked (twice, to
    seal) at the terminal."""
    value = ctx.env.get(PASSPHRASE_ENV)
    if value:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise CliError(f"the archive's passphrase: set {PASSPHRASE_ENV}, or run this at a terminal to be "
                       "asked for it", code="passphrase")
    first = getpass.getpass("Archive passphrase: ")
    if not first:
        raise CliError("the passphrase is empty", code="passphrase")
    if confirm and getpass.getpass("The same passphrase again: ") != first:
        raise CliError("the two passphrases differ", code="passphrase")
    return first.encode("utf-8")


# -- backup -------------------------------------------------------------------------------


def cmd_backup(ctx: Context) -> int:
    config = ctx.config()
    data_dir = config.data_dir.absolute()
    if not (data_dir / KEY_INDEX).is_file():
        raise CliError(f"no node in {data_dir}: nothing to back up", code="not_initialised")
    dest = Path(ctx.args.file).absolute()
    if dest.exists():
        raise CliError(f"{dest} exists; give the backup a new name", code="exists")
    if dest.is_relative_to(data_dir):
        raise CliError("write the backup outside the data folder (it would back itself up, and go with the "
                       "folder if the disk is lost)", code="invalid")
    passphrase = read_passphrase(ctx, confirm=True) if ctx.args.passphrase else None
    if not dest.parent.is_dir():
        raise CliError(f"{dest.parent} is not a folder", code="invalid")
    scratch = Path(tempfile.mkdtemp(prefix=".refnode-backup-", dir=dest.parent))
    part = dest.with_name(dest.name + ".part")
    try:
        members, about = _gather(ctx, config, scratch)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, progress("Writing the archive", sum(m.size for m in members),
                                                   as_json=ctx.as_json, in_bytes=True) as bar:
            sink: Any = SealingWriter(out, passphrase) if passphrase else out
            write_archive(sink, members, about, written=bar.advance)
            if passphrase:
                sink.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, dest)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise CliError(f"not backed up: {exc.strerror or exc}{where}", code="backup_failed") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        part.unlink(missing_ok=True)
    data = {"path": str(dest), "bytes": dest.stat().st_size, "encrypted": passphrase is not None,
            "files": len(members), **{k: about[k] for k in ("node_id", "schema_version", "created_at")}}
    ctx.emit(data, lambda: print_fields([
        ("backup", data["path"]), ("size", f"{data['bytes']:,} bytes, {len(members)} files"),
        ("node", f"{about['org_name']} ({fingerprint_of(about['node_id'])})"),
        ("database", f"schema {about['schema_version']}, {about['database_bytes']:,} bytes"),
        ("encrypted", "yes (keep the passphrase apart from the archive)" if passphrase else
         "no (it holds the keys and tokens: keep it as safe as the data folder)")], indent=""))
    return 0


def _gather(ctx: Context, config: Config, scratch: Path) -> tuple[list[Member], dict[str, Any]]:
    """The database copied, the folder's files read: the members and the manifest's facts.
    Keys are read before and after the copy, and it is taken again if they changed (a key
    rotation meanwhile), so that keys and database go together."""
    data_dir = config.data_dir.absolute()
    copy = scratch / DATABASE
    for _ in range(3):
        keys_before = _keys(folder_members(data_dir))
        copy.unlink(missing_ok=True)
        with progress("Copying the database", None, as_json=ctx.as_json) as bar:
            version = snapshot(config.database_path, copy, progress=lambda done, total: bar.update(done, total))
        members = folder_members(data_dir)
        if _keys(members) == keys_before:
            break
    else:
        raise CliError("the node's keys kept changing during the backup; try again", code="backup_failed")
    try:
        check_database(copy)
    except DatabaseDamaged as exc:
        raise CliError(f"not backed up: {exc}", code="database_damaged") from None
    index = json.loads(next(m.data for m in members if m.path == KEY_INDEX) or b"{}")
    database = member_from_file(DATABASE, copy)
    about = {"created_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "refnode_version": _version(), "node_id": index.get("node_id"), "org_name": config.org_name,
             "schema_version": version, "keys_sealed": bool(index.get("encrypted")),
             "database_bytes": database.size}
    return [database, member_from_bytes(CONFIG, _config_bytes(config, scratch)), *members], about


def _keys(members: list[Member]) -> list[tuple[str, str]]:
    return [(m.path, m.sha256) for m in members if m.path.startswith("keys/")]


def _config_bytes(config: Config, scratch: Path) -> bytes:
    """The configuration file the node runs with; if it has none (environment only), one
    written from what it runs with."""
    if config.config_path.is_file():
        return config.config_path.read_bytes()
    path = scratch / CONFIG
    chosen = {k: getattr(config, k) for k in ("org_name", "host", "port", "public_url", "inbox_workers")}
    write_default_config(path, data_dir=str(scratch), **chosen)
    return path.read_bytes()


def _version() -> str:
    try:
        return importlib.metadata.version("referral-node")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# -- restore ------------------------------------------------------------------------------


def cmd_restore(ctx: Context) -> int:
    if not getattr(ctx.args, "data_dir", None):
        raise CliError("say where to restore: refnode restore FILE --data-dir NEW-FOLDER", code="usage",
                       exit_code=2)
    target = Path(ctx.args.data_dir).absolute()
    archive = Path(ctx.args.file)
    _check_target(target)
    try:
        size = archive.stat().st_size
        fh = open(archive, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise CliError(f"cannot read {archive}: {exc.strerror}", code="invalid") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restoring-", dir=target.parent))
    try:
        with fh:
            passphrase = read_passphrase(ctx, confirm=False) if is_sealed(fh.peek(len(MAGIC))) else None
            with progress("Restoring", size, as_json=ctx.as_json, in_bytes=True) as bar:
                counted = _CountingReader(fh, bar.advance)
                source: Any = OpeningReader(counted, passphrase) if passphrase else counted
                about = extract(source, staging)
        _check_restored(staging, about)
        os.chmod(staging, 0o700)
        if target.exists():
            target.rmdir()  # empty, as checked
        os.rename(staging, target)
    except (ArchiveError, SealedStreamError) as exc:
        raise CliError(f"not restored: {exc}", code="bad_archive") from None
    except OSError as exc:
        raise CliError(f"not restored: {exc.strerror or exc}", code="restore_failed") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    data = {"data_dir": str(target), "node_id": about["node_id"], "org_name": about["org_name"],
            "schema_version": about["schema_version"], "backup_created_at": about["created_at"],
            "files": len(about["files"])}
    ctx.emit(data, lambda: (print_fields([
        ("restored", f"{about['org_name']} ({fingerprint_of(about['node_id'])})"), ("into", str(target)),
        ("backup of", about["created_at"]), ("files", f"{len(about['files'])}, every checksum verified")],
        indent=""), print(f"Start it with: refnode --data-dir {target} serve (stop the node it was "
                          "backed up from first: it is the same node)")))
    return 0


def _check_target(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise CliError(f"{target} is not a folder", code="not_empty")
    lock = target / "serve.lock"
    if lock.exists():
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise CliError(f"a node is running on {target}; restore into a new, empty folder",
                               code="running") from None
    if any(target.iterdir()):
        raise CliError(f"{target} is not empty; restore into a new, empty folder", code="not_empty")


def _check_restored(folder: Path, about: dict[str, Any]) -> None:
    """The restored folder holds a database SQLite finds whole, of a schema we know, the
    keys of the node the manifest names, and a configuration pointing at the folder."""
    try:
        check_database(folder / DATABASE)
    except (DatabaseDamaged, SchemaTooNew) as exc:
        raise ArchiveError(str(exc)) from None
    index = folder / KEY_INDEX
    try:
        node_id = json.loads(index.read_text(encoding="utf-8")).get("node_id")
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"the archive's keys are unreadable: {exc}") from None
    if node_id != about.get("node_id"):
        raise ArchiveError("the archive's keys are not those of the node its manifest names")
    for path in folder.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    config = folder / CONFIG
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    line = 'data_dir = "."  # this folder (set by refnode restore)'
    text, found = re.subn(r"(?m)^\s*data_dir\s*=.*$", line, text)
    config.write_text(text if found else line + "\n" + text, encoding="utf-8")
    os.chmod(config, 0o600)
    try:
        load_config(config, {})
    except ConfigError as exc:
        raise ArchiveError(f"the archive's configuration does not load: {exc}") from None


class _CountingReader:
    """A file read through, telling how many bytes were read (for the progress bar)."""

    def __init__(self, fh: BinaryIO, tell: Any) -> None:
        self._fh, self._tell = fh, tell

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._tell(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._fh.readline(size)
        self._tell(len(data))
        return data

    def peek(self, size: int = 0) -> bytes:
        return self._fh.peek(size)  # type: ignore[attr-defined,no-any-return]


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``backup`` and ``restore`` to the parser."""
    p = command(commands, "backup", cmd_backup,
                "archive the database (copied live), configuration and keys to FILE, while the node serves")
    p.add_argument("file", help="the archive to write (outside the data folder)")
    p.add_argument("--passphrase", action="store_true",
                   help=f"seal the whole archive under a passphrase, from {PASSPHRASE_ENV} or asked for "
                        "(never on the command line)")
    p = command(commands, "restore", cmd_restore,
                "restore a backup into a new, empty folder (--data-dir NEW), checking every file")
    p.add_argument("file", help="the archive written by 'refnode backup'")
