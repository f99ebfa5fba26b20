"""kombu's filesystem transport with atomic writes, for the embedded default.

kombu writes a message file in place, so a consumer polling the folder can
take it while it is still empty and fail to decode it (which stops a Celery
worker). Here a message is written under a name no consumer matches, then
renamed into place: a rename is atomic, so a message is seen whole or not at
all. ``register()`` makes ``filesystem://`` use this transport.

kombu's consumer takes a queue's files in the order of their names, which start
with the time they were written. Here a name starts with the message's priority
(``0`` for 9, the most urgent, to ``9`` for 0) before the time, so the most urgent
message is taken first, and among equals the oldest.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic_ns

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        rank = self.max_priority - self._get_message_priority(payload)
        name = f"{rank}_{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: the consumer's "<anything>.<queue>.msg" match never sees it.
        staging = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(staging, "wb") as handle:
                handle.write(dumps(payload).encode())
            os.rename(staging, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make ``filesystem://`` URLs use the atomic transport in this process."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
