"""A node of one process counts in plain Python and loads prometheus-client with the first
scrape (node.base.metrics): what it writes out is what prometheus-client's own Counter and
Histogram would, sample for sample, in both formats. The exchange itself is in
test_metrics.py; several processes (prometheus-client's multiprocess mode) in
test_metrics_processes.py."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from conftest import ROOT
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from node.base.metrics import LATENCY_BUCKETS, NodeMetrics, _Families


def _theirs() -> tuple[CollectorRegistry, dict[str, Counter | Histogram]]:
    disable_created_metrics()  # as the node does when it uses them (no *_created series)
    registry = CollectorRegistry(auto_describe=True)
    ours = NodeMetrics()
    made: dict[str, Counter | Histogram] = {}
    for family in ours.families:
        if family.kind == "counter":
            made[family.name] = Counter(family.name, family.documentation, family.labelnames, registry=registry)
        else:
            made[family.name] = Histogram(family.name, family.documentation, family.labelnames,
                                          buckets=LATENCY_BUCKETS, registry=registry)
    return registry, made


def test_our_counts_read_as_prometheus_clients_own() -> None:
    ours = NodeMetrics()
    assert ours.registry is None  # one process: no prometheus-client metrics
    registry, theirs = _theirs()
    rng = random.Random(16)
    # bounds exactly, between, below the first and past the last
    seconds = [0.0, 0.001, 0.0010001, 0.3, 1.0, 29.9, 30.0, 31.0, 1e6] + [rng.expovariate(5) for _ in range(200)]
    for s in seconds:
        outcome = rng.choice(["delivered", "retry", "refused"])
        ours.delivery_seconds.labels(outcome).observe(s)
        theirs["refnode_delivery_seconds"].labels(outcome).observe(s)
        group, status = rng.choice(["inbox", "api", "pages"]), rng.choice(["2xx", "4xx"])
        ours.http_seconds.labels(group, status).observe(s)
        theirs["refnode_http_request_seconds"].labels(group, status).observe(s)
    for _ in range(50):
        peer, reason = rng.choice(["p1", "p2"]), rng.choice(["network", "http_503"])
        ours.delivery_attempts.labels(peer).inc()
        theirs["refnode_delivery_attempts"].labels(peer).inc()
        ours.delivery_failures.labels(peer, reason).inc()
        theirs["refnode_delivery_failures"].labels(peer, reason).inc()
    ours.inbox("referral.offer", None, receipt=True)
    theirs["refnode_inbox_envelopes"].labels("referral.offer", "accepted", "none").inc()
    ours.front_restarts.inc()
    theirs["refnode_inbox_front_restarts"].inc()

    mine = CollectorRegistry(auto_describe=False)
    mine.register(_Families(ours.families))  # type: ignore[arg-type]
    assert generate_latest(mine) == generate_latest(registry)
    assert generate_openmetrics(mine) == generate_openmetrics(registry)
    assert b'refnode_delivery_seconds_bucket{le="+Inf",outcome="retry"}' in generate_latest(mine)


def test_unused_families_read_alike() -> None:
    registry, _ = _theirs()
    mine = CollectorRegistry(auto_describe=False)
    mine.register(_Families(NodeMetrics().families))  # type: ignore[arg-type]
    assert generate_latest(mine) == generate_latest(registry)  # the unlabelled counter at 0


@pytest.mark.slow
def test_counting_loads_no_prometheus_client() -> None:
    code = ("import sys\nfrom node.base.metrics import NodeMetrics\nm = NodeMetrics()\n"
            "m.inbox('referral.offer', None, receipt=True)\nm.http_seconds.labels('api', '2xx').observe(0.01)\n"
            "print(sorted(n for n in sys.modules if n.startswith('prometheus_client')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert run.stdout.strip() == "[]"
