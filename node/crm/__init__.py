"""The local CRM: users (core table), workflows with ordered stages, deals, contacts,
notes and document metadata; the system of record that referrals move between.

``models`` holds the frozen models and the input models the admin API parses,
``errors`` the one error type (``CrmError``), ``store`` the tables (migration 10) and
every SQL statement, ``csv_io`` CSV export and all-or-nothing import.
"""
