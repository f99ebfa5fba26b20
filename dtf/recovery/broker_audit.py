"""What the broker still holds: the evidence that a batch's message was lost.

A Redis restarted without persistence (or flushed) forgets every queued message; the
database still lists those batches as pending. On Redis the messages can be read
without taking them: each queue's lists (one per priority level) and the hash of
messages delivered to a worker but not yet acknowledged. A batch whose message is in
neither, twice in a row, was lost (a message between the queue and the hash is in
neither for a moment, never for a whole reconciler interval).

Other brokers answer None (no evidence): RabbitMQ keeps durable queues' messages
across restarts, and the embedded broker keeps them as files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)


def queued_task_ids(app, queues: Iterable[str]) -> set[str] | None:
    """Task ids of the messages ``queues`` hold or that are delivered but unacked; None
    when this broker cannot be read that way or does not answer."""
    try:
        with app.connection_for_read() as connection:
            if connection.transport.driver_type != "redis":
                return None
            channel = connection.default_channel
            client = channel.client
            found: set[str] = set()
            for queue in set(queues):
                for priority in channel.priority_steps:
                    key = channel._q_for_pri(queue, priority)
                    found.update(_ids(client.lrange(key, 0, -1)))
            unacked = client.hvals(channel.unacked_key)
            found.update(_ids(json.loads(_text(entry))[0] for entry in unacked))
            return found
    except Exception:
        logger.debug("cannot read the broker's queues", exc_info=True)
        return None


def _ids(messages: Iterable) -> set[str]:
    ids = set()
    for message in messages:
        try:
            body = json.loads(_text(message)) if not isinstance(message, dict) else message
            ids.add(body["headers"]["id"])
        except (ValueError, KeyError, TypeError):
            continue  # not a task message of Celery's protocol 2
    return ids


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
