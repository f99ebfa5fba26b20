"""The embedded broker never shows a consumer a message that is still being written."""

import os

import pytest
from kombu import Connection

from dtf.embedded_broker import Transport, register


@pytest.fixture
def connection(tmp_path):
    """A connection to the embedded broker keeping its messages in ``tmp_path``."""
    register()
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
    }
    with Connection("filesystem://", transport_options=options) as connection:
        yield connection


def test_filesystem_urls_use_the_atomic_transport(connection, tmp_path):
    assert isinstance(connection.transport, Transport)
    queue = connection.SimpleQueue("cpu")
    queue.put({"batch": 1})
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no staging left
    assert queue.get(timeout=1).payload == {"batch": 1}
    queue.close()


def test_a_message_being_written_is_not_taken(connection, tmp_path):
    (tmp_path / ".123_abc.cpu.msg.tmp").write_bytes(b"")  # as if a writer were half-way
    queue = connection.SimpleQueue("cpu")
    assert queue.qsize() == 0
    queue.close()


def test_the_most_urgent_message_is_taken_first_then_the_oldest(connection):
    # A queue name of its own: kombu remembers what this process declared.
    queue = connection.SimpleQueue("urgent")
    for name, priority in (("low", 0), ("first 9", 9), ("middle", 5), ("second 9", 9)):
        queue.put({"name": name}, priority=priority)
    taken = []
    for _ in range(4):
        message = queue.get(timeout=1)
        message.ack()
        taken.append(message.payload["name"])
    queue.close()
    assert taken == ["first 9", "second 9", "middle", "low"]
