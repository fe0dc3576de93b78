"""Gmail-style notification published to the Pub/Sub emulator, pushed to a real
receive_push process, acknowledged, and turned into exactly one task."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from inboxsync import ids
from inboxsync.adapters.firestore import PUSH_EVENTS
from inboxsync.local import emulators
from inboxsync.local.stack import pubsub_put, start_function, wait_until

if TYPE_CHECKING:
    from conftest import PausedQueue

pytestmark = [pytest.mark.emulators, pytest.mark.e2e]


def test_published_notification_is_pushed_acked_and_queued_once(
    firestore_host: str,
    pubsub_host: str,
    tasks_host: str,
    project_id: str,
    firestore_client,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    paused_queue: PausedQueue,
) -> None:
    port = emulators.free_port()
    function = start_function(
        "receive_push",
        port,
        {
            "INBOXSYNC_PROJECT": project_id,
            "INBOXSYNC_LOCAL_MODE": "true",
            "FIRESTORE_EMULATOR_HOST": firestore_host,
            "CLOUD_TASKS_EMULATOR_HOST": tasks_host,
            "INBOXSYNC_TASKS_LOCATION": paused_queue.location,
            "INBOXSYNC_TASKS_QUEUE": paused_queue.name,
            "INBOXSYNC_SYNC_URL": "http://127.0.0.1:9/",
        },
        log_dir=tmp_path,
    )
    try:
        topic = f"projects/{project_id}/topics/gmail"
        subscription = f"projects/{project_id}/subscriptions/push"
        pubsub_put(pubsub_host, topic, {})
        pubsub_put(
            pubsub_host,
            subscription,
            {
                "topic": topic,
                "pushConfig": {"pushEndpoint": f"http://127.0.0.1:{port}/"},
            },
        )
        data = json.dumps({"emailAddress": "bob@example.com", "historyId": 777})

        published = requests.post(
            f"http://{pubsub_host}/v1/{topic}:publish",
            json={"messages": [{"data": base64.b64encode(data.encode()).decode()}]},
            timeout=10,
        )

        assert published.status_code == 200
        (message_id,) = published.json()["messageIds"]
        event_id = ids.push_event_id(subscription, message_id)
        marker = firestore_client.collection(PUSH_EVENTS).document(event_id)
        assert wait_until(lambda: marker.get().exists, timeout_s=30)
        assert marker.get().get("historyId") == 777
        # The emulator redelivers a NACKed message about every second; an ACKed
        # one is never seen again, so a few seconds later there is still one
        # request in the function's log, one marker and one task.
        log_path = tmp_path / "receive_push.log"
        assert not wait_until(
            lambda: log_path.read_text().count('"message":"push ') > 1, timeout_s=3
        )
        (task,) = paused_queue.tasks()
        assert task.name.endswith(ids.task_name_for_event(event_id))
        log = log_path.read_text()
        (line,) = [json.loads(x) for x in log.splitlines() if '"push ' in x]
        assert line["outcome"] == "enqueued"
        assert line["event_id"] == event_id
        assert line["history_id"] == 777
        assert line["mailbox_id"] == ids.mailbox_id("bob@example.com")
        assert line["severity"] == "INFO"
        assert "LOCAL MODE" in log
        assert "bob@example.com" not in log
    finally:
        function.stop()
