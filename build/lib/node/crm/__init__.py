"""The local CRM: users (core table), workflows with ordered stages, deals, contacts,
notes and document metadata; the system of record that referrals move between.

``fields`` holds the field types and their checks, ``models`` the frozen models and the
input models the admin API parses, ``parsing`` the step from input to a model (or a
``CrmError`` naming the field), ``errors`` the one error type (``CrmError``), ``store``
the tables (migration 10) and every SQL statement, one module per kind of record,
``users`` the rules for changing a user, ``events`` the hooks run when a deal moves,
``csv_io`` CSV export, and ``csv_import`` the all-or-nothing import of a CSV file fed as it
arrives (``csv_records`` parses it, ``csv_stage`` keeps the checked rows until they are
written).
"""
