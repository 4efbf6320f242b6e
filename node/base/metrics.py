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

**One process** (no fronts, the usual case) counts in plain Python (:class:`Family`), and
prometheus-client, 30-odd modules and 2 MiB of an idle node, is loaded with the first
scrape, which hands it the counts to write out (:class:`_Families`): the same families,
samples and text as its own ``Counter`` and ``Histogram`` would give
(tests/node/test_metrics_light.py compares the two).
"""

from __future__ import annotations

import bisect
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
    from prometheus_client import values

    _created_off()
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


class Family:
    """A counter or histogram of one process, counted on the event loop's thread: per
    label values, a count (counter) or the bucket counts and sum (histogram)."""

    def __init__(self, kind: str, name: str, documentation: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = ()) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(buckets) + (float("inf"),) if kind == "histogram" else ()
        self.series: dict[tuple[str, ...], _Series] = {}
        if not self.labelnames:
            self.labels()  # an unlabelled metric shows from the start, at zero

    def labels(self, *values: str) -> _Series:
        series = self.series.get(values)
        if series is None:
            assert len(values) == len(self.labelnames), f"{self.name} takes {self.labelnames}"
            series = self.series[values] = _Series(self)
        return series

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)


class _Series:
    __slots__ = ("family", "value", "counts")

    def __init__(self, family: Family) -> None:
        self.family = family
        self.value = 0.0  # a counter's count, a histogram's sum
        self.counts = [0.0] * len(family.buckets)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def observe(self, amount: float) -> None:
        self.value += amount
        self.counts[bisect.bisect_left(self.family.buckets, amount)] += 1


def _created_off() -> None:
    """No ``*_created`` series: a scrape then holds only the counts, and Prometheus sees a
    counter that starts again at zero (a restart) without them."""
    from prometheus_client import disable_created_metrics

    disable_created_metrics()


class NodeMetrics:
    """The counters and histograms of one node (in one process)."""

    def __init__(self) -> None:
        self.families: list[Family] = []
        self.registry: Any = None  # prometheus-client's, when processes share their counts
        if shared_folder() is not None:
            from prometheus_client import CollectorRegistry

            _created_off()
            self.registry = CollectorRegistry(auto_describe=True)
        self.inbox_envelopes = self._counter(
            "refnode_inbox_envelopes", "Envelopes POSTed to the inbox, by message type, outcome "
            "(accepted, duplicate, rejected with a signed receipt, refused without one) and error code.",
            ["type", "outcome", "code"])
        self.delivery_attempts = self._counter(
            "refnode_delivery_attempts", "Attempts to deliver an outbox item, by peer.", ["peer"])
        self.delivery_failures = self._counter(
            "refnode_delivery_failures", "Delivery attempts that did not end with a valid receipt, by peer "
            "and reason (network, bad_receipt, http_<status> when retried, or the peer's error code when "
            "it refused for good).", ["peer", "reason"])
        self.delivery_seconds = self._histogram(
            "refnode_delivery_seconds", "Time of one delivery attempt, request sent to answer read, by "
            "outcome (delivered, retry, refused).", ["outcome"])
        self.http_seconds = self._histogram(
            "refnode_http_request_seconds", "Time to answer an HTTP request, by route group (inbox, api, "
            "pages, static, other) and status class.", ["group", "status"])
        self.front_restarts = self._counter(
            "refnode_inbox_front_restarts", "Inbox front processes started again after one exited.", [])

    def _counter(self, name: str, documentation: str, labelnames: list[str]) -> Any:
        if self.registry is not None:
            from prometheus_client import Counter

            return Counter(name, documentation, labelnames, registry=self.registry)
        family = Family("counter", name, documentation, labelnames)
        self.families.append(family)
        return family

    def _histogram(self, name: str, documentation: str, labelnames: list[str]) -> Any:
        if self.registry is not None:
            from prometheus_client import Histogram

            return Histogram(name, documentation, labelnames, buckets=LATENCY_BUCKETS, registry=self.registry)
        family = Family("histogram", name, documentation, labelnames, LATENCY_BUCKETS)
        self.families.append(family)
        return family

    def inbox(self, message_type: str, error_code: str | None, *, receipt: bool, duplicate: bool = False) -> None:
        outcome, code = outcome_of(error_code, receipt=receipt, duplicate=duplicate)
        self.inbox_envelopes.labels(message_type, outcome, code).inc()

    def expose(self, scraped: Any, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric, in the format ``accept`` asks for (Prometheus text by default), and
        its content type: this process's (or, when processes share, every process's)
        counts, then what ``scraped`` (a prometheus-client collector) gathered."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder
        from prometheus_client.multiprocess import MultiProcessCollector
        from prometheus_client.process_collector import ProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        folder = shared_folder()
        if folder is not None:
            MultiProcessCollector(registry, path=str(folder))
        elif self.registry is not None:
            registry.register(_Collected(self.registry))
        else:
            registry.register(_Families(self.families))
        ProcessCollector(registry=registry)  # the node process: process_resident_memory_bytes, ...
        registry.register(scraped)
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type


class _Collected:
    """Another registry's metrics, as one collector."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def collect(self) -> Iterable[object]:
        return self._registry.collect()  # type: ignore[no-any-return]


class _Families:
    """Our families as prometheus-client's: what its ``Counter`` and ``Histogram`` collect."""

    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> Iterable[object]:
        from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        for family in self._families:
            if family.kind == "counter":
                counter = CounterMetricFamily(family.name, family.documentation, labels=family.labelnames)
                for values, series in family.series.items():
                    counter.add_metric(values, series.value)
                yield counter
                continue
            histogram = HistogramMetricFamily(family.name, family.documentation, labels=family.labelnames)
            for values, series in family.series.items():
                running, buckets = 0.0, []
                for bound, count in zip(family.buckets, series.counts, strict=True):
                    running += count
                    buckets.append((floatToGoString(bound), running))
                histogram.add_metric(values, buckets, series.value)
            yield histogram


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ...: the ``status`` label of HTTP metrics."""
    return f"{status // 100}xx"
