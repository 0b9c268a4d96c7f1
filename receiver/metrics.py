"""Prometheus metrics: one registry per process, built at start-up and passed down.

Labels are bounded sets (event type is clamped to the known list plus "unknown"; never a
channel or client id). The web process serves `/metrics`; a worker serves its own registry
on `WORKER_METRICS_PORT`. Gauges that describe shared state (queue age, dead deliveries)
are read from the database at scrape time, so every process reports the same truth.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from receiver.vocabulary import KNOWN_EVENTS, PERMISSION_EVENTS

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 14400)


def event_label(event_type: str) -> str:
    """Clamp an event type to a bounded label set."""
    return (
        event_type if event_type in KNOWN_EVENTS or event_type in PERMISSION_EVENTS else "unknown"
    )


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_received = Counter(
            "hub_receiver_events_received_total",
            "Webhook and callback events received, by type and outcome",
            ["source", "event_type", "outcome"],
            registry=r,
        )
        self.requests_rejected = Counter(
            "hub_receiver_requests_rejected_total",
            "Requests refused before storing, by endpoint and reason",
            ["endpoint", "reason"],
            registry=r,
        )
        self.signature_failures = Counter(
            "hub_receiver_signature_failures_total",
            "Webhooks that failed authentication, by reason",
            ["reason"],
            registry=r,
        )
        self.ack_latency = Histogram(
            "hub_receiver_ack_duration_seconds",
            "Time from request start to the webhook's answer",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.enrichment = Counter(
            "hub_receiver_enrichment_total",
            "Enrichment attempts by outcome (enriched, not_found, retry, gave_up, skipped)",
            ["outcome"],
            registry=r,
        )
        self.partner_api_latency = Histogram(
            "hub_receiver_partner_api_request_duration_seconds",
            "Partner API request latency by operation and outcome",
            ["operation", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.status_changes = Counter(
            "hub_receiver_status_changes_total",
            "Channel status changes recorded, by from and to status",
            ["from_status", "to_status"],
            registry=r,
        )
        self.deliveries = Counter(
            "hub_receiver_deliveries_total",
            "Delivery outcomes by target kind (sent, retried, dead, skipped, throttled, held)",
            ["target_kind", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "hub_receiver_delivery_latency_seconds",
            "Time from receiving an event to a notification sent for it",
            ["target_kind"],
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        # Counted where claims are judged: the web process with the in-process runner, the
        # worker (WORKER_METRICS_PORT) with Redis. A rejected claim notifies no one, so this
        # is where forged callbacks show.
        self.permission_claims = Counter(
            "hub_receiver_permission_claims_total",
            "Permission callback claims judged, by verdict (confirmed, rejected, unconfirmed)",
            ["claim"],
            registry=r,
        )
        self.jobs = Counter(
            "hub_receiver_jobs_total",
            "Jobs run by function and outcome",
            ["function", "outcome"],
            registry=r,
        )
        # Read from the database at scrape time (see receiver.http.metrics).
        self.unprocessed_events = Gauge(
            "hub_receiver_unprocessed_events",
            "Events stored but not yet processed",
            registry=r,
        )
        self.oldest_unprocessed_age = Gauge(
            "hub_receiver_oldest_unprocessed_event_age_seconds",
            "Age of the oldest unprocessed event (0 when none)",
            registry=r,
        )
        self.deliveries_by_state = Gauge(
            "hub_receiver_deliveries_in_state",
            "Deliveries by current state",
            ["state"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "hub_receiver_queue_jobs",
            "Jobs waiting in the queue (arq backend; -1 when Redis is unreachable)",
            registry=r,
        )
        self.balance_round_seconds = Gauge(
            "hub_receiver_balance_round_seconds",
            "How long the last finished balance round took (1 request per 10 s; NaN: none yet)",
            registry=r,
        )
        self.balance_round_clients = Gauge(
            "hub_receiver_balance_round_clients",
            "Balances read in the last finished balance round",
            registry=r,
        )
