"""Cloud Tasks adapter: creates the named HTTP task that runs one sync."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import tasks_v2

from inboxsync.errors import QueueUnavailable

__all__ = ["CloudTasksQueue", "make_tasks_client"]


def make_tasks_client(emulator_host: str | None) -> tasks_v2.CloudTasksClient:
    """A Cloud Tasks client; a plain gRPC channel when an emulator host is given."""
    if emulator_host:
        import grpc  # only needed locally
        from google.cloud.tasks_v2.services.cloud_tasks.transports import (
            CloudTasksGrpcTransport,
        )

        channel = grpc.insecure_channel(emulator_host)
        return tasks_v2.CloudTasksClient(
            transport=CloudTasksGrpcTransport(channel=channel)
        )
    return tasks_v2.CloudTasksClient()


class CloudTasksQueue:
    """Enqueues POST tasks to the sync worker, with an OIDC token when deployed."""

    def __init__(
        self,
        client: tasks_v2.CloudTasksClient,
        *,
        queue_path: str,
        target_url: str,
        service_account: str | None,
        audience: str,
        timeout_s: float = 5.0,
        dispatch_deadline_s: int = 600,
    ) -> None:
        self._client = client
        self._queue_path = queue_path
        self._target_url = target_url
        self._service_account = service_account
        self._audience = audience
        self._timeout_s = timeout_s
        self._dispatch_deadline = timedelta(seconds=dispatch_deadline_s)

    def enqueue(self, task_name: str, body: Mapping[str, Any]) -> bool:
        http_request = tasks_v2.HttpRequest(
            url=self._target_url,
            http_method=tasks_v2.HttpMethod.POST,
            headers={"Content-Type": "application/json"},
            body=json.dumps(body, separators=(",", ":")).encode(),
        )
        if self._service_account:
            http_request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self._service_account, audience=self._audience
            )
        task = tasks_v2.Task(
            name=f"{self._queue_path}/tasks/{task_name}",
            http_request=http_request,
            dispatch_deadline=self._dispatch_deadline,
        )
        retry = gretry.Retry(deadline=self._timeout_s, initial=0.05, maximum=1.0)
        try:
            self._client.create_task(
                parent=self._queue_path, task=task, retry=retry, timeout=self._timeout_s
            )
        except gexc.AlreadyExists:
            # Same hashed name as an earlier attempt: the task exists (or ran
            # within the name's retention window), which is what we wanted.
            return False
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise QueueUnavailable(f"Cloud Tasks create_task failed: {exc}") from exc
        return True
