"""``refnode contacts``: the clients in the node's CRM, listed, shown with their notes, and
added one at a time (``import contacts`` in :mod:`node.cli.csv_files` adds many).
"""

from __future__ import annotations

from typing import Any

from node.cli.output import Command, Context, Group, flatten, print_fields, print_notes, print_table


def _name(person: dict[str, Any]) -> str:
    return " ".join(filter(None, [person.get("first_name"), person.get("last_name")])) or person.get("email") or ""


def cmd_contacts_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/contacts", q=ctx.args.q)
    ctx.emit(data, lambda: print_table(["ID", "NAME", "EMAIL", "PHONE", "BORN"],
                                       [[c["id"], _name(c), c["email"], c["phone"], c["date_of_birth"]]
                                        for c in data["contacts"]]))
    return 0


def cmd_contacts_show(ctx: Context) -> int:
    client = ctx.client()
    contact = client.call("GET", f"/api/v1/contacts/{ctx.args.id}")["contact"]
    notes = client.call("GET", f"/api/v1/contacts/{ctx.args.id}/notes")["notes"]

    def human() -> None:
        address = ", ".join(v for v in contact["address"].values() if v)
        print_fields([("contact", contact["id"]), ("name", _name(contact)), ("email", contact["email"]),
                      ("phone", contact["phone"]), ("address", address), ("born", contact["date_of_birth"]),
                      *flatten(contact["custom_fields"], "custom."),
                      ("created", contact["created_at"]), ("updated", contact["updated_at"])], indent="")
        print_notes(notes)

    ctx.emit({"contact": contact, "notes": notes}, human)
    return 0


def cmd_contacts_add(ctx: Context) -> int:
    a = ctx.args
    body = {"first_name": a.first_name, "last_name": a.last_name, "email": a.email, "phone": a.phone,
            "date_of_birth": a.dob}
    data = ctx.call("POST", "/api/v1/contacts", {k: v for k, v in body.items() if v is not None})
    c = data["contact"]
    ctx.emit(data, lambda: print(f"Added contact {c['id']} ({_name(c)})."))
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``contacts`` to the parser."""
    g = group("contacts", "clients in this node's CRM")
    p = command(g, "list", cmd_contacts_list, "list contacts")
    p.add_argument("--q", help="search names, email and phone")
    command(g, "show", cmd_contacts_show, "show a contact and their notes").add_argument("id")
    p = command(g, "add", cmd_contacts_add, "add a contact")
    p.add_argument("--first-name", required=True)
    p.add_argument("--last-name", required=True)
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--dob", help="date of birth, YYYY-MM-DD")
