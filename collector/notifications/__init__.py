"""Notifications: events (events), what goes over the wire (payloads), one attempt to a target (senders), and
the outbox's producer and deliverer (notifier). The outbox itself is data.outbox."""
