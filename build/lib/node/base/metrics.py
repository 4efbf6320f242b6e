"""The node's Prometheus metrics: what it counts as it runs, with ``prometheus-client``.

Every node holds its own :class:`NodeMetrics` (a registry of its own, so that two nodes in
one test process never share counts). What is counted as it happens lives here: envelopes
taken in, delivery attempts, HTTP requests, inbox fronts restarted. What is read when
Prometheus asks (outbox depth, the mail queue, database size, fronts alive) is gathered at
scrape time by ``node.http.metrics_api``, which also serves ``/metrics``.

**Several processes.** With inbox fronts (``inbox_workers`` > 0) a node is several
processes, and each counts what it handles. ``refnode serve`` then uses prometheus-client's
multiprocess mode (:func:`share_between_processes`): every process writes its counts to
files in ``<data_dir>/run/metrics`` (``PROMETHEUS_MULTIPROC_DIR``, which the fronts inherit),
and ``/metrics``, answered by the node process, adds up the files of every process, those
of fronts that died included (their counts stay in the totals). The folder is emptied at
each start, so totals start at zero with the node, as counters do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# No ``*_created`` series: a scrape then holds only the counts, and Prometheus sees a counter
# that starts again at zero (a restart) without them.
disable_created_metrics()

#: The variable prometheus-client reads for its multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds: from a loopback answer to a slow peer's.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def share_between_processes(folder: Path) -> None:
    """From now on, this process and the processes it starts count in files under
    ``folder`` (emptied first), which :meth:`NodeMetrics.expose` adds up. Call it before
    any :class:`NodeMetrics` is made.

    prometheus-client chooses how a process keeps its values when it is imported, from
    ``PROMETHEUS_MULTIPROC_DIR``; this process imported it before it knew, so the choice
    is made again here (``values.get_value_class``, as at import)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    values.ValueClass = values.get_value_class()


def shared_folder() -> Path | None:
    """Where this process's counts go when it shares them (see the module's docstring)."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def outcome_of(error_code: str | None, *, receipt: bool, duplicate: bool = False) -> tuple[str, str]:
    """The ``outcome`` and ``code`` labels of an envelope: accepted, duplicate, rejected
    (a signed receipt says so) or refused (no receipt: the sender was not verified, or
    nothing was decided), and the error code (``none`` for none)."""
    if error_code is None:
        return ("duplicate" if duplicate else "accepted"), "none"
    return ("rejected" if receipt else "refused"), error_code


class NodeMetrics:
    """The counters and histograms of one node (in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inbox_envelopes = Counter(
            "refnode_inbox_envelopes", "Envelopes POSTed to the inbox, by message type, outcome "
            "(accepted, duplicate, rejected with a signed receipt, refused without one) and error code.",
            ["type", "outcome", "code"], registry=r)
        self.delivery_attempts = Counter(
            "refnode_delivery_attempts", "Attempts to deliver an outbox item, by peer.", ["peer"], registry=r)
        self.delivery_failures = Counter(
            "refnode_delivery_failures", "Delivery attempts that did not end with a valid receipt, by peer "
            "and reason (network, bad_receipt, http_<status> when retried, or the peer's error code when "
            "it refused for good).", ["peer", "reason"], registry=r)
        self.delivery_seconds = Histogram(
            "refnode_delivery_seconds", "Time of one delivery attempt, request sent to answer read, by "
            "outcome (delivered, retry, refused).", ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.http_seconds = Histogram(
            "refnode_http_request_seconds", "Time to answer an HTTP request, by route group (inbox, api, "
            "pages, static, other) and status class.", ["group", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.front_restarts = Counter(
            "refnode_inbox_front_restarts", "Inbox front processes started again after one exited.", registry=r)

    def inbox(self, message_type: str, error_code: str | None, *, receipt: bool, duplicate: bool = False) -> None:
        outcome, code = outcome_of(error_code, receipt=receipt, duplicate=duplicate)
        self.inbox_envelopes.labels(message_type, outcome, code).inc()

    def expose(self, scraped: Collector, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric, in the format ``accept`` asks for (Prometheus text by default), and
        its content type: this process's (or, when processes share, every process's)
        counts, then what ``scraped`` gathered."""
        registry = CollectorRegistry(auto_describe=False)
        folder = shared_folder()
        if folder is not None:
            MultiProcessCollector(registry, path=str(folder))
        else:
            registry.register(_Collected(self.registry))
        ProcessCollector(registry=registry)  # the node process: process_resident_memory_bytes, ...
        registry.register(scraped)
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type


class _Collected(Collector):
    """Another registry's metrics, as one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[object]:  # type: ignore[override]
        return self._registry.collect()


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ...: the ``status`` label of HTTP metrics."""
    return f"{status // 100}xx"
