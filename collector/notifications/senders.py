"""One attempt to hand one event to one target. A sender returns when the target accepted the event and raises
DeliveryError (with what to tell the operator) when it did not; the notifier decides about retrying."""

from __future__ import annotations

import functools
import json

import httpx

from collector.notifications.payloads import alertmanager_body, apprise_message, webhook_body, webhook_headers
from config.settings import NotificationTarget
from data.outbox import NotificationEvent


class DeliveryError(Exception):
    """The target did not accept the event; the message says what it answered."""


@functools.cache
def _client() -> httpx.Client:
    """One client for every delivery: its TLS context and connections are reused (a fresh one per request cost
    ~50 ms each, most of a delivery's time)."""
    return httpx.Client()


def _post(target: NotificationTarget, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = _client().post(target.url, content=body, headers=headers, timeout=target.timeout_s)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc or 'no answer'} ({target.url})") from exc
    if not response.is_success:
        raise DeliveryError(f"HTTP {response.status_code} from {target.url}: {response.text[:300]}")


def send_webhook(target: NotificationTarget, event: NotificationEvent) -> None:
    body = webhook_body(event)
    _post(target, body, webhook_headers(event, body, target.secret))


def send_alertmanager(target: NotificationTarget, event: NotificationEvent, external_url: str | None = None) -> None:
    body = json.dumps(alertmanager_body(event, receiver=target.name, external_url=external_url)).encode()
    # The event id travels here too, so a receiver can drop a repeated attempt; a secret signs it as well.
    _post(target, body, webhook_headers(event, body, target.secret))


def send_apprise(target: NotificationTarget, event: NotificationEvent) -> None:
    import apprise  # loads its service plugins: only where a target uses it

    notifier = apprise.Apprise()
    for url in target.url.split():
        if not notifier.add(url):
            raise DeliveryError(f"target {target.name}: {url.split('://')[0]}://… is not a URL Apprise understands "
                                "(see https://github.com/caronc/apprise/wiki)")
    title, body, kind = apprise_message(event)
    result = notifier.notify(body=body, title=title, notify_type=kind, timeout=target.timeout_s)
    try:
        if not result:
            problems = [entry.message for entry in result.logs() if entry.level in ("ERROR", "WARNING")]
            raise DeliveryError(f"Apprise ({result.status.name}): {'; '.join(problems[-3:]) or 'no service accepted it'}")
    finally:
        result.close()


def send(target: NotificationTarget, event: NotificationEvent, *, external_url: str | None = None) -> None:
    """Deliver `event` to `target` once; DeliveryError when it was not accepted."""
    if target.kind == "webhook":
        send_webhook(target, event)
    elif target.kind == "alertmanager":
        send_alertmanager(target, event, external_url)
    else:
        send_apprise(target, event)
