"""The client portal (issue 14): clients invited from a deal sign in with a passcode, fill
in their fact find, read and acknowledge compliance documents, upload the documents asked
of them, and message their broker.

``catalogue`` the fact-find catalogue (versioned data), ``settings`` each broker's portal
and flows and the organisation's labels and SMS credits, ``access`` invitations,
passcodes, client sessions and revoking, ``client_data`` what a client sees and changes,
``vault`` client files sealed at rest, ``notify`` and ``sms`` telling the client.

Its layer is between the federation (which runs its deal-moved hook and SMS sender) and
mail (which it queues to).
"""
