"""Admin: the node's e-mail. The SMTP settings in effect (never the password, only
whether one is set), or where mail goes without them (``.eml`` files in
``<data_dir>/mail-out``), the mail queue (``node.mail.queue.queue_state``), and a test
e-mail to the signed-in admin. ``admin_only``: the settings are the node's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.federation.outbox import TxContext
from node.mail.queue import enqueue, queue_state
from node.web.views import Pages, View

pages = Pages()


def _password_source(config: Any) -> str:
    """Where the SMTP password comes from, and whether it is there: never the password."""
    if not config.smtp_user:
        return "None: the server is used without signing in."
    if config.smtp_password_file:
        try:
            present = bool(config.smtp_password())
        except OSError:
            return (f"Meant to come from the file {config.smtp_password_file}, which cannot be read or is readable "
                    "by others (it must be mode 0600): mail waits until it is fixed.")
        return f"{'Set' if present else 'Empty'}, from the file {config.smtp_password_file}."
    present = bool(config.smtp_password())
    return (f"{'Set' if present else 'Not set'}, from the environment variable {config.smtp_password_env}.")


@pages.get("/admin/mail", "admin_mail.html", admin_only=True)
async def mail_settings(view: View) -> dict[str, Any]:
    config, now = view.config, view.node.clock.now()
    state = await view.node.db.read(lambda conn: queue_state(conn, now))
    smtp = None
    if config.smtp_host:
        smtp = {"host": config.smtp_host, "port": config.smtp_port,
                "security": {"starttls": "STARTTLS", "tls": "TLS from the start", "none": "None (plain text)"}[
                    config.smtp_security],
                "user": config.smtp_user, "password": _password_source(config)}
    return {"smtp": smtp, "from_address": config.from_address, "mail_dir": config.mail_dir, "queue": state}


@pages.post("/admin/mail/test", admin_only=True)
async def send_test(view: View) -> web.StreamResponse:
    me, config = view.user, view.config

    def queue(conn: Any, ctx: TxContext) -> None:
        enqueue(conn, config, kind="test", to_addr=me.email, to_name=me.name, context={"sent_by": me.name},
                now=ctx.now)
        ctx.effects.mail = True

    await view.node.transact(queue)
    where = (f"It goes out through {config.smtp_host}." if config.smtp_host
             else f"No SMTP server is set: it is written as an .eml file to {config.mail_dir}.")
    return view.redirect("/admin/mail", f"A test e-mail to {me.email} is on its way. {where}")
