"""The local CRM: users (core table), workflows with ordered stages, deals, contacts,
notes and document metadata; the system of record that referrals move between.

``models`` holds the frozen models and the input models the admin API parses,
``store`` the tables and every SQL statement, ``csv_io`` CSV export and import.
"""
