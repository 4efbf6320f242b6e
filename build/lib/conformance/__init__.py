"""The conformance suite: ``refnode conformance URL`` checks any node against
docs/protocol.md from the outside, as a peer would see it.

It plays a peer with throwaway keys (:mod:`conformance.peer`), builds envelopes with
``protocol/`` (and on purpose breaks them, :mod:`conformance.forge`), posts them to the
target's inbox and reads its answers (:mod:`conformance.target`), and serves its own inbox
for what the target sends back (:mod:`conformance.listener`). It never imports ``node``
(an import-linter contract holds that): everything it learns goes over HTTP, so the same
run is as valid against a node written in another language as against ours.

The checks are in :mod:`conformance.checks_handshake`, :mod:`conformance.checks_referrals`,
:mod:`conformance.checks_lifecycle` and :mod:`conformance.checks_negative` (the negative
matrix: a table, one entry a case); :mod:`conformance.run` runs them in order and
:mod:`conformance.report` prints the results and writes JUnit XML.
"""
