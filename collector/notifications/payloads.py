"""What goes over the wire: the generic webhook's signed JSON, and Alertmanager's webhook format.

The webhook's signature follows the common scheme (Stripe, Standard Webhooks): HMAC-SHA256 over
`"<timestamp>.<body>"` with the target's secret, sent as `X-I2vmon-Signature: sha256=<hex>` beside
`X-I2vmon-Timestamp` (Unix seconds). A receiver recomputes it over the raw body (`verify_signature`) and refuses
a timestamp far from now, so a captured request cannot be replayed later. `X-I2vmon-Event-Id` (also sent as
`Idempotency-Key`) is the same on every attempt of one event: delivery is at least once, so a receiver that must
act once drops an id it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from data.outbox import NotificationEvent
from data.schemas import SUCCEEDED

SIGNATURE_HEADER = "X-I2vmon-Signature"
TIMESTAMP_HEADER = "X-I2vmon-Timestamp"
EVENT_ID_HEADER = "X-I2vmon-Event-Id"
EVENT_KIND_HEADER = "X-I2vmon-Event-Kind"
WEBHOOK_VERSION = 1


def webhook_body(event: NotificationEvent) -> bytes:
    return json.dumps({"version": WEBHOOK_VERSION, "source": "i2vmon", **event.to_json()}, default=str,
                      separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str | int, body: bytes, signature: str, *,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """Whether `signature` (the header's value) signs `body` at `timestamp` with `secret`, and the timestamp is
    within `tolerance_s` of now. For receivers; the tests verify with it."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def webhook_headers(event: NotificationEvent, body: bytes, secret: str | None, *, now: float | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json", EVENT_ID_HEADER: event.id, "Idempotency-Key": event.id,
        EVENT_KIND_HEADER: event.kind, "User-Agent": "i2vmon-notifier",
    }
    if secret:
        ts = int(time.time() if now is None else now)
        headers[TIMESTAMP_HEADER] = str(ts)
        headers[SIGNATURE_HEADER] = sign(secret, ts, body)
    return headers


def _fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def alertmanager_body(event: NotificationEvent, *, receiver: str, external_url: str | None = None) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for one alert event: what tools written for Alertmanager's
    `webhook_config` receivers (alert bridges, paging services) read. An alert event only."""
    alert = event.data.get("alert")
    if not isinstance(alert, dict):
        raise ValueError(f"event {event.id} ({event.kind}) is not an alert; the Alertmanager format carries alerts only")
    status = "resolved" if alert.get("state") == "resolved" else "firing"
    labels = {"alertname": str(alert.get("rule")), "severity": str(alert.get("level")), "instance": event.host,
              "job": "i2vmon"}
    if alert.get("gpu_index") is not None:
        labels["gpu"] = str(alert["gpu_index"])
    regression = event.data.get("regression")
    if isinstance(regression, dict):
        labels["setting"] = str(regression.get("setting_label", ""))
    annotations = {"summary": event.title, "description": event.message}
    if alert.get("action"):
        annotations["action"] = str(alert["action"])
    if alert.get("value") is not None:
        annotations["value"] = f"{alert['value']:g}"
    # Alertmanager writes the zero time for an alert that has not ended.
    ends_at = alert.get("ended_at") or "0001-01-01T00:00:00Z"
    group_labels = {"alertname": labels["alertname"]}
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname=\"{labels['alertname']}\"}}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url or "",
        "alerts": [{
            "status": status, "labels": labels, "annotations": annotations,
            "startsAt": alert.get("started_at") or event.ts.isoformat(), "endsAt": ends_at,
            "generatorURL": external_url or "", "fingerprint": _fingerprint(labels),
        }],
    }


def apprise_message(event: NotificationEvent) -> tuple[str, str, str]:
    """(title, body, Apprise notify type) of an event for chat, e-mail and push."""
    kind = {"info": "info", "warning": "warning"}.get(event.level, "failure")
    if event.kind in (f"job_{SUCCEEDED}", "alert_resolved"):
        kind = "success"
    return event.title, f"{event.message}\n\n{event.host} · {event.ts:%Y-%m-%d %H:%M:%S} UTC · event {event.id}", kind
