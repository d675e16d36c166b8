"""Prometheus metrics of one server: deliveries, rejections, ingest latency.

Each app gets its own registry (tests build many apps). With several worker processes,
``cmdb-sync serve`` sets PROMETHEUS_MULTIPROC_DIR and /metrics aggregates every worker's files.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from cmdb_sync.projections import KNOWN_ACTIONS, REGISTRY

KNOWN_KINDS = frozenset(REGISTRY)


def _bounded(value: str | None, known: frozenset[str]) -> str:
    """Label values come from the sender: keep the known ones, fold the rest, so cardinality stays small."""
    if value is None:
        return "none"
    return value if value in known else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "cmdb_sync_deliveries",
            "Webhook deliveries accepted, by object kind, action and ingest status",
            ["kind", "action", "status"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "cmdb_sync_rejected_deliveries",
            "Webhook deliveries refused before the journal, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.conflicts = Counter(
            "cmdb_sync_conflicting_redeliveries",
            "Deliveries of an id already applied or stale whose body differs from the one journaled (the first is kept)",
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "cmdb_sync_ingest_seconds",
            "Time to journal and project one delivery",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def delivered(self, kind: str | None, action: str | None, status: str) -> None:
        self.deliveries.labels(_bounded(kind, KNOWN_KINDS), _bounded(action, KNOWN_ACTIONS), status).inc()

    def conflict(self) -> None:
        self.conflicts.inc()

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
