"""Delivery metrics (Prometheus): counts per channel and outcome, queue depth, and the time from
commit to the provider's acceptance."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "pwreset_outbox_messages_total",
    "Outbox messages by channel and outcome (queued, sent, retried, dead, expired, unreadable: sealed under a key "
    "this worker does not hold, left for one that does; alert on it)",
    ["channel", "outcome"],
)
DEPTH = Gauge("pwreset_outbox_depth", "Messages waiting (pending) or being sent (sending)", ["channel", "status"],
              multiprocess_mode="livemax")
LATENCY = Histogram(
    "pwreset_outbox_delivery_seconds", "From commit of the message to acceptance by the provider", ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
_children: dict[tuple[str, str], Counter] = {}


def _count(channel: str, outcome: str) -> None:
    child = _children.get((channel, outcome))
    if child is None:
        child = _children[(channel, outcome)] = MESSAGES.labels(channel, outcome)
    child.inc()


def queued(channel: str) -> None:
    _count(channel, "queued")


def sent(channel: str, latency: float) -> None:
    _count(channel, "sent")
    LATENCY.labels(channel).observe(max(0.0, latency))


def retried(channel: str) -> None:
    _count(channel, "retried")


def dead(channel: str) -> None:
    _count(channel, "dead")


def expired(channel: str) -> None:
    _count(channel, "expired")


def unreadable(channel: str) -> None:
    _count(channel, "unreadable")


def set_depth(depth: dict[tuple[str, str], int]) -> None:
    for channel in ("SMS", "VOICE", "EMAIL"):
        for status in ("pending", "sending"):
            DEPTH.labels(channel, status).set(depth.get((channel, status), 0))
