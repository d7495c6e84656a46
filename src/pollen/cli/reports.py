"""The reports of the commands that are no job: the query listings (`pollen assets`, `pollen earnings`) and the
table copies (`pollen load`, `pollen export`). Pydantic models, in their own module so that importing the command
modules (every `pollen` process does, to build the command tree) does not import pydantic."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pollen.report import JobReport


class AssetsListing(JobReport):
    job: str = "assets"
    status: str = "active"
    count: int = 0
    assets: list[dict[str, Any]] = Field(default_factory=list)


class EarningsListing(JobReport):
    job: str = "earnings"
    start: str = ""
    end: str = ""
    count: int = 0
    earnings: list[dict[str, Any]] = Field(default_factory=list)


class LoadReport(JobReport):
    table: str = ""
    #: "delete" when the file was a dead-letter file of deletes (then ``written`` counts deleted keys).
    operation: str = "put"
    duplicates: int = 0
    stale: int = 0
    deadline_reached: bool = False
    dead_letters: list[str] = []


class ExportReport(JobReport):
    table: str = ""
    file: str = ""
