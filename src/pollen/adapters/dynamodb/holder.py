"""Who holds a lease, precisely: the host (its name and boot), the process id and that process's start time.

A lease whose holder ran on this host, in this boot, can be checked at once: when that process is gone (or its id
now belongs to a process started later) the holder is dead and its lease can be taken over without waiting for the
TTL. A holder on another host (or another boot, container or Lambda sandbox) cannot be checked; its lease expires.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_PROC = Path("/proc")


@cache
def boot_id() -> str:
    """This boot of this machine (Linux; empty elsewhere, where a holder's liveness is judged by its pid only)."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def process_start(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux), or None when it does not exist. Where /proc is
    missing, 0 for a process that exists (its start cannot be compared)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return 0 if _exists(pid) else None
    # The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22, starttime
    except (IndexError, ValueError):
        return 0


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """The process that holds (or held) a lease."""

    host: str
    boot: str
    pid: int
    started: int

    @classmethod
    def current(cls) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), boot_id(), pid, process_start(pid) or 0)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Holder | None:
        """The holder recorded in a lease item, or None for an item written before holders were recorded."""
        try:
            return cls(str(item["host"]), str(item.get("boot", "")), int(item["pid"]), int(item["pidStart"]))
        except (KeyError, TypeError, ValueError):
            return None

    def attributes(self) -> dict[str, Any]:
        return {"host": self.host, "boot": self.boot, "pid": self.pid, "pidStart": self.started}

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"

    def on_this_host(self) -> bool:
        here = Holder.current()
        return self.host == here.host and self.boot == here.boot

    def is_dead(self) -> bool:
        """True only when the holder ran on this host in this boot and its process is gone (or its pid was reused by
        a later process). A holder elsewhere is never known to be dead."""
        if not self.on_this_host():
            return False
        started = process_start(self.pid)
        if started is None:
            return True
        return bool(started and self.started and started != self.started)
