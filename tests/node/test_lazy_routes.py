"""The admin API's modules and the console's page modules load with the first request to
one of their routes (node.http.lazy), from the generated indexes: a real ``refnode serve``
process is asked, from inside, which modules it holds before and after requests, and the
lazily loaded API route and pages must answer as ever (a page, a form's POST with its
CSRF check, an admin-API read, the OpenAPI document of every route)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_config

from node.cli.setup import init_node
from node.http.routes import ALL, route_index
from node.web.site import CLIENT_PAGE_MODULES, PAGE_MODULES, page_index, page_tables

#: Serve; from a thread, once listening, make requests and report the modules each loaded.
PROBE = r"""
import json, os, sys, threading, time, urllib.error, urllib.request
config, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.argv = ["refnode", "--config", config, "serve"]
base = f"http://127.0.0.1:{port}"

def ours():
    return {m for m in sys.modules if m.startswith(("node.web.", "node.http."))}

def get(path, headers={}, data=None):
    request = urllib.request.Request(base + path, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode(), answer.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), []

def probe():
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1); break
        except OSError:
            time.sleep(0.1)
    report = {"idle": sorted(ours())}
    before = ours()
    status, page, cookies = get("/login", {"Accept": "text/html"})
    report["login"] = {"status": status, "has_form": 'name="csrf"' in page, "loaded": sorted(ours() - before)}
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    cookie = "; ".join(c.split(";")[0] for c in cookies)
    status, page, _ = get("/login", {"Accept": "text/html", "Cookie": cookie,
                                     "Content-Type": "application/x-www-form-urlencoded"},
                          f"csrf={csrf}&email=nobody%40idle.example&password=wrong-password".encode())
    report["signin"] = {"status": status, "refused": "do not match an account" in page}
    before = ours()
    status, body, _ = get("/api/v1/workflows", {"Authorization": "Bearer " + token})
    report["api"] = {"status": status, "body": json.loads(body), "loaded": sorted(ours() - before)}
    status, body, _ = get("/api/v1/openapi.json")
    report["openapi"] = {"status": status, "paths": len(json.loads(body)["paths"]) if status == 200 else 0}
    report["deals_pages_loaded"] = "node.web.deals_pages" in sys.modules
    sys.__stderr__.write("PROBE " + json.dumps(report) + "\n")
    sys.__stderr__.flush()
    os._exit(0)

threading.Thread(target=probe, daemon=True).start()
from node.cli.main import main
main()
"""


def test_the_indexes_are_what_the_modules_declare() -> None:
    assert (ROOT / "node/http/route_index.py").read_text(encoding="utf-8") == route_index()
    assert (ROOT / "node/web/page_index.py").read_text(encoding="utf-8") == page_index()
    from node.http.route_index import ROUTES
    from node.web.page_index import CLIENT_PAGES, PAGES

    assert [(r.method, r.path) for r in ALL] == [(method, path) for _, method, path in ROUTES]
    declared = [(r.method, r.path) for t in page_tables() for r in t.routes]
    declared += [(r.method, r.path) for t in page_tables(CLIENT_PAGE_MODULES) for r in t.routes]
    assert declared == [(method, path) for _, method, path in PAGES + CLIENT_PAGES]
    assert {m for m, _, _ in PAGES} == {f"node.web.{name}" for name in PAGE_MODULES}


@pytest.mark.slow
def test_routes_load_their_module_with_the_first_request_and_serve(tmp_path: Path) -> None:
    config = make_config(tmp_path, "Lazy", log_level="warning")
    made = init_node(config, admin_email="admin@idle.example", admin_name="Idle Admin")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REFNODE_LOG_FORMAT": "json"}
    env.pop("REFNODE_TOKEN", None)
    run = subprocess.run([sys.executable, "-c", PROBE, str(config.config_path), str(config.port), made.admin_token],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stderr.splitlines() if line.startswith("PROBE ")]
    assert lines, run.stderr[-3000:]
    report = json.loads(lines[0][6:])
    idle = set(report["idle"])
    assert not idle & {f"node.web.{name}" for name in PAGE_MODULES + CLIENT_PAGE_MODULES}
    assert not idle & {"node.http.routes", "node.http.workflows_api", "node.http.deals_api", "node.http.csv_api"}
    # a page: its module is loaded with it, and it serves the form and takes its POST
    assert report["login"]["status"] == 200 and report["login"]["has_form"]
    assert "node.web.auth_pages" in report["login"]["loaded"]
    assert report["signin"] == {"status": 401, "refused": True}  # past the CSRF check, to the password
    # an API route: its module is loaded with it, and it answers
    assert report["api"]["status"] == 200, report["api"]
    assert "node.http.workflows_api" in report["api"]["loaded"]
    assert "node.http.deals_api" not in report["api"]["loaded"]
    assert report["openapi"]["status"] == 200 and report["openapi"]["paths"] >= 40
    assert not report["deals_pages_loaded"]
