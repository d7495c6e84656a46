"""Fault injection in front of a real SQS client (moto's server over HTTP): SendMessageBatch refusals on demand."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class FlakySqs:
    """The real (moto) client, with SendMessageBatch faults injected: the first ``fail_calls`` calls report the
    listed entry ids as failed (not sent), or raise ``error`` instead."""

    def __init__(
        self, inner: Any, *, fail_calls: int, fail_ids: set[str] | None = None, error: str | None = None
    ) -> None:
        self.inner = inner
        self.fail_calls = fail_calls
        self.fail_ids = fail_ids
        self.error = error
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if len(self.calls) > self.fail_calls:
            return dict(self.inner.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "injected"}}, "SendMessageBatch")
        ids = {e["Id"] for e in Entries}
        failing = ids & self.fail_ids if self.fail_ids is not None else ids
        sent = [e for e in Entries if e["Id"] not in failing]
        response = dict(self.inner.send_message_batch(QueueUrl=QueueUrl, Entries=sent)) if sent else {}
        failed = [
            {"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "injected"} for i in sorted(failing)
        ]
        return {"Successful": response.get("Successful", []), "Failed": failed}
