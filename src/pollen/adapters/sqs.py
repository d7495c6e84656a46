"""The pollenation queue (SQS): JSON messages in batches of ten."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.aws import translate

#: SendMessageBatch takes at most ten entries.
BATCH = 10


class SqsQueue:
    """A :class:`pollen.ports.QueueSender` over an SQS client (built by :mod:`pollen.wiring`)."""

    def __init__(self, queue_url: str, *, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def send(self, messages: Sequence[dict[str, Any]]) -> list[str]:
        """Send every message; returns one error line per message SQS did not accept."""
        errors: list[str] = []
        for start in range(0, len(messages), BATCH):
            batch = messages[start : start + BATCH]
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(message, separators=(",", ":"), default=str)}
                for i, message in enumerate(batch)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                error = translate(exc, service="sqs", action="SendMessageBatch")
                if error.exit_code == 2:
                    raise error from exc
                errors += [f"{m.get('symbol', '?')}: not enqueued: {error}" for m in batch]
                continue
            for failed in response.get("Failed", []):
                message = batch[int(failed["Id"])]
                errors.append(f"{message.get('symbol', '?')}: not enqueued: {failed.get('Code', 'failed')}")
        return errors
