"""E-mail: the node's one notification channel.

- :mod:`node.mail.kinds` names every mail and who may turn it off;
- :mod:`node.mail.render` renders a mail from its templates (plain text and HTML);
- :mod:`node.mail.queue` keeps mail in the database until it is sent: a mail is queued in
  the same transaction as what caused it, so a restart loses none;
- :mod:`node.mail.sender` sends it over SMTP (``aiosmtplib``), or writes ``.eml`` files
  when no server is set, retrying with backoff.
"""
