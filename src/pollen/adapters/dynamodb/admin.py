"""Table administration: create what is missing, wait until active, report what was done."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pollen.adapters.dynamodb.errors import error_code, translate
from pollen.report import JobReport, Stopwatch
from pollen.tables import ALL_TABLES, TableDef

log = logging.getLogger(__name__)


class TablesReport(JobReport):
    created: list[str] = []
    existing: list[str] = []
    mismatched: list[str] = []


def describe(client: Any, physical_name: str) -> dict[str, Any] | None:
    try:
        return dict(client.describe_table(TableName=physical_name)["Table"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise translate(exc, action=f"DescribeTable {physical_name}") from exc
    except BotoCoreError as exc:
        raise translate(exc, action=f"DescribeTable {physical_name}") from exc


def schema_differences(table: TableDef, described: dict[str, Any]) -> list[str]:
    """How an existing table differs from its definition (keys, attribute types, GSIs, stream)."""
    problems: list[str] = []
    if described.get("KeySchema") != table.key_schema():
        problems.append("key schema")
    types = {a["AttributeName"]: a["AttributeType"] for a in described.get("AttributeDefinitions", [])}
    for attr in table.attribute_definitions():
        if types.get(attr["AttributeName"]) != attr["AttributeType"]:
            problems.append(f"attribute {attr['AttributeName']}")
    indexes = {i["IndexName"]: i for i in described.get("GlobalSecondaryIndexes", [])}
    for index in table.indexes:
        found = indexes.get(index.name)
        if found is None:
            problems.append(f"missing index {index.name}")
        elif found.get("KeySchema") != index.key_schema():
            problems.append(f"index {index.name} keys")
    spec = described.get("StreamSpecification") or {}
    if table.stream and not (spec.get("StreamEnabled") and spec.get("StreamViewType") == "NEW_AND_OLD_IMAGES"):
        problems.append("stream")
    return problems


def ensure_tables(
    client: Any,
    prefix: str = "",
    tables: Iterable[TableDef] = ALL_TABLES,
    *,
    wait_timeout_s: float = 120.0,
) -> TablesReport:
    """Create every table that is missing and wait until all are ACTIVE. Safe to repeat."""
    watch = Stopwatch()
    report = TablesReport(job="tables create")
    pending: list[str] = []
    for table in tables:
        name = f"{prefix}{table.name}"
        described = describe(client, name)
        if described is None:
            try:
                client.create_table(**table.create_table_request(name))
            except ClientError as exc:
                if error_code(exc) != "ResourceInUseException":  # created concurrently: fine
                    raise translate(exc, action=f"CreateTable {name}") from exc
            except BotoCoreError as exc:
                raise translate(exc, action=f"CreateTable {name}") from exc
            log.info("table created", extra={"table": name, "stream": table.stream})
            report.created.append(name)
            pending.append(name)
            if table.ttl_attribute:
                _enable_ttl(client, name, table.ttl_attribute)
        else:
            log.debug("table exists", extra={"table": name})
            report.existing.append(name)
            if table.ttl_attribute and not _ttl_enabled(client, name):
                _enable_ttl(client, name, table.ttl_attribute)  # a table from before expiry was defined
            problems = schema_differences(table, described)
            if problems:
                report.mismatched.append(name)
                report.add_error(f"{name} differs from its definition: {', '.join(problems)}")
    _wait_active(client, pending, wait_timeout_s)
    report.written = len(report.created)
    report.unchanged = len(report.existing) - len(report.mismatched)
    report.failed = len(report.mismatched)
    report.ok = not report.mismatched
    report.duration_s = watch.elapsed_s
    return report


def _ttl_enabled(client: Any, name: str) -> bool:
    try:
        status = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"].get("TimeToLiveStatus")
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, action=f"DescribeTimeToLive {name}") from exc
    return status in ("ENABLED", "ENABLING")


def _enable_ttl(client: Any, name: str, attribute: str) -> None:
    try:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )
    except ClientError as exc:  # TTL is housekeeping; a lease also checks expiry itself
        if error_code(exc) not in ("ValidationException", "ResourceInUseException"):
            raise translate(exc, action=f"UpdateTimeToLive {name}") from exc


def _wait_active(client: Any, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            described = describe(client, name)
            if described is not None and described.get("TableStatus") == "ACTIVE":
                break
            if time.monotonic() > deadline:
                raise translate(TimeoutError(f"table {name} not ACTIVE after {timeout_s:.0f}s"))
            time.sleep(0.2)
