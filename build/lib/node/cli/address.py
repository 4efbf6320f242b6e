"""Where the ``refnode`` commands find the running node.

``refnode serve`` writes the address it listens on to ``<data_dir>/serving.json`` once it
takes connections (with its process id) and removes the file when it stops. The other
commands read it, so that they reach the node of their data folder whatever port it was
started on (``REFNODE_PORT=18801 refnode serve``, ``refnode serve --port 18801``) and
whatever ``public_url`` peers use (a proxy in front of it, say). When no ``serve`` is
running for the folder (no file, or its process is gone), they use ``public_url``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from node.base.config import Config, derived_public_url

SERVING_FILE = "serving.json"


def local_url(config: Config) -> str:
    """The URL of the node's own listening address, as seen from this machine."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host, config.host)  # noqa: S104
    return derived_public_url(host, config.port)


def write_serving(config: Config) -> Path:
    """Record that this process serves ``config.data_dir`` at :func:`local_url`."""
    path = config.data_dir / SERVING_FILE
    temporary = path.with_name(f".{SERVING_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps({"url": local_url(config), "pid": os.getpid()}) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def clear_serving(config: Config) -> None:
    """Remove the file if this process wrote it."""
    path = config.data_dir / SERVING_FILE
    if _read(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def admin_url(config: Config) -> str:
    """Where the admin API of the node of ``config.data_dir`` answers: the address its
    running ``serve`` recorded, else ``public_url``."""
    recorded = _read(config.data_dir / SERVING_FILE)
    url, pid = recorded.get("url"), recorded.get("pid")
    if isinstance(url, str) and isinstance(pid, int) and _alive(pid):
        return url
    return config.public_url


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
