"""Where the local poller has got to, per stream shard: a JSON file under POLLEN_HOME, replaced atomically.

A checkpoint is written only after the index has durably applied every record up to it, so a crash loses
nothing; records between the last checkpoint and a crash are delivered again and the versions make their second
application a no-op.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT_FILE = "stream-checkpoints.json"


@dataclass(frozen=True)
class ShardCheckpoint:
    #: Last sequence number applied (None: nothing yet).
    sequence_number: str | None
    #: The shard is closed and was read to its end.
    finished: bool = False


class FileCheckpoints:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def in_home(cls, home: Path) -> FileCheckpoints:
        return cls(home / CHECKPOINT_FILE)

    @classmethod
    def if_present(cls, home: Path) -> FileCheckpoints | None:
        """The checkpoints under ``home``, or None when no local poller has run there."""
        return cls.in_home(home) if (home / CHECKPOINT_FILE).exists() else None

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, stream_arn: str, shard_id: str) -> ShardCheckpoint | None:
        with self._lock:
            entry = self._load().get(stream_arn, {}).get(shard_id)
        if entry is None:
            return None
        return ShardCheckpoint(entry.get("sequence_number"), bool(entry.get("finished", False)))

    def shards(self, stream_arn: str) -> dict[str, ShardCheckpoint]:
        with self._lock:
            entries = self._load().get(stream_arn, {})
        return {k: ShardCheckpoint(v.get("sequence_number"), bool(v.get("finished"))) for k, v in entries.items()}

    def put(self, stream_arn: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        with self._lock:
            data = self._load()
            data.setdefault(stream_arn, {})[shard_id] = {
                "sequence_number": checkpoint.sequence_number,
                "finished": checkpoint.finished,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".checkpoints-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                Path(tmp).replace(self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
