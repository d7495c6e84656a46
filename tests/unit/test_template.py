"""The SAM template (template.yaml) against the code: tables, handlers, stream mappings, IAM and alarms."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pollen.tables import ALL_TABLES, TableDef

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) read as their long forms."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_is_clean() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _table_resource(template: dict[str, Any], table: TableDef) -> dict[str, Any]:
    for resource in _resources(template, "AWS::DynamoDB::Table").values():
        if resource["Properties"]["TableName"] == {"Fn::Sub": f"${{TablePrefix}}{table.name}"}:
            return dict(resource["Properties"])
    raise AssertionError(f"no table {table.name} in template.yaml")


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_tables_equal_the_code_definitions(template: dict[str, Any], table: TableDef) -> None:
    props = _table_resource(template, table)
    expected = table.create_table_request("x")
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props.get("GlobalSecondaryIndexes", []) == expected.get("GlobalSecondaryIndexes", [])
    if table.stream:
        assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    else:
        assert "StreamSpecification" not in props
    if table.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": table.ttl_attribute, "Enabled": True}
    assert len(_resources(template, "AWS::DynamoDB::Table")) == len(ALL_TABLES)


def test_every_handler_path_resolves_to_a_real_function(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    assert len(functions) == 5
    sys.path.insert(0, str(ROOT / "src"))
    for name, resource in functions.items():
        module_name, _, attribute = resource["Properties"]["Handler"].rpartition(".")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute, None)), f"{name}: {module_name}.{attribute} is not callable"


def test_sync_assets_has_the_seed_limits_and_daily_schedules(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    sync_assets = functions["SyncAssetsFunction"]["Properties"]
    assert sync_assets["Timeout"] == 300 and sync_assets["MemorySize"] == 512
    for name in ("SyncAssetsFunction", "SyncEarningsFunction", "SchedulePollenationFunction"):
        (event,) = functions[name]["Properties"]["Events"].values()
        assert event["Type"] == "Schedule"
    pollenate = functions["PollenateFunction"]["Properties"]
    assert pollenate["ReservedConcurrentExecutions"] == {"Ref": "PollenateConcurrency"}
    (queue_event,) = pollenate["Events"].values()
    assert queue_event["Type"] == "SQS"
    assert queue_event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = template["Resources"]["PollenateQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["PollenateDeadLetterQueue", "Arn"]}


def test_stream_event_source_mappings_follow_the_seed(template: dict[str, Any]) -> None:
    events = _resources(template, "AWS::Serverless::Function")["StreamSyncFunction"]["Properties"]["Events"]
    streams = set()
    for event in events.values():
        if event["Type"] == "Schedule":
            continue
        props = event["Properties"]
        streams.add(props["Stream"]["Fn::GetAtt"][0])
        assert props["Stream"]["Fn::GetAtt"][1] == "StreamArn"
        assert props["BatchSize"] == 10
        assert props["MaximumBatchingWindowInSeconds"] == 5
        assert props["StartingPosition"] == "TRIM_HORIZON"
        assert props["BisectBatchOnFunctionError"] is True
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 0 < props["MaximumRetryAttempts"] <= 10000
        assert 60 <= props["MaximumRecordAgeInSeconds"] <= 604800
        assert props["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert streams == {"AssetsTable", "EarningsCalendarTable", "CompanyOverviewTable"}


DATA_SERVICES = ("dynamodb:", "sqs:", "secretsmanager:", "es:", "logs:")


def test_no_policy_grants_wildcards_on_data(template: dict[str, Any]) -> None:
    roles = _resources(template, "AWS::IAM::Role")
    functions = _resources(template, "AWS::Serverless::Function")
    assert {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()} <= set(roles)
    for role_name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], role_name
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                for action in actions:
                    assert not action.endswith(":*") and action != "*", f"{role_name}: {action}"
                if any(a.startswith(DATA_SERVICES) for a in actions):
                    assert "*" not in resources, f"{role_name}/{statement.get('Sid')}: Resource '*' on data"


def test_each_function_reaches_only_its_own_tables(template: dict[str, Any]) -> None:
    def tables_of(role: str) -> set[str]:
        found: set[str] = set()
        for policy in template["Resources"][role]["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                text = str(statement["Resource"])
                found |= (
                    set(re.findall(r"(\w+Table)", text))
                    if any(
                        str(a).startswith("dynamodb:")
                        for a in statement["Action"]
                        if isinstance(statement["Action"], list)
                    )
                    or str(statement["Action"]).startswith("dynamodb:")
                    else set()
                )
        return found

    assert tables_of("SyncAssetsRole") == {"AssetsTable", "ControlTable"}
    assert tables_of("SyncEarningsRole") == {"EarningsCalendarTable", "ControlTable"}
    # The scheduler also computes the status it logs: item counts of every table, its run records.
    assert tables_of("SchedulePollenationRole") == {
        "AssetsTable",
        "EarningsCalendarTable",
        "CompanyOverviewTable",
        "EarningsTable",
        "CashFlowTable",
        "BalanceSheetTable",
        "IncomeStatementTable",
        "ControlTable",
    }
    assert "ControlTable" in tables_of("PollenateRole")  # run records
    assert "ControlTable" not in tables_of("StreamSyncRole")


# Every alerting threshold the seeds name, as (metric, threshold) of an alarm in template.yaml.
SEED_THRESHOLDS = {
    "write failure rate > 5% (000, 001)": ("DynamoWriteFailure", 5),
    "batch operation failures > 10% (000)": ("BatchWriteFailures", 10),
    "batch write failure rate > 15% (002)": ("BatchWriteFailures", 15),
    "GSI query failures > 5% (000, 001)": ("GsiQueryFailure", 5),
    "throttling > 20% (002)": ("DynamoThrottles", 20),
    "API call failure rate > 5% (004)": ("UpstreamErrors", 5),
    "asset status update failures > 10% (002)": ("MoveFailed", 10),
    "data consistency failures (000)": ("ConsistencyDefects", 0),
    "data consistency failure rate > 5% (001)": ("ConsistencyDefects", 5),
    "retry exhaustion (001)": ("RetryExhausted", 0),
    "batch operation time > 45 s (001)": ("UpsertDuration", 45000),
    "memory > 80% (001)": ("MemoryUsedPercent", 80),
    "execution time > 4 minutes (004)": ("Duration", 240000),
    "bulk upsert > 1 minute (002)": ("Duration", 60000),
    "function execution failures (004)": ("Errors", 0),
    "DLQ depth > 0": ("ApproximateNumberOfMessagesVisible", 0),
    "iterator age (003)": ("IteratorAge", 300000),
}


def _alarm_metrics(alarm: dict[str, Any]) -> set[str]:
    props = alarm["Properties"]
    if "MetricName" in props:
        return {props["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}


def test_every_seed_threshold_has_an_alarm(template: dict[str, Any]) -> None:
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    index = {(metric, alarm["Properties"]["Threshold"]) for alarm in alarms for metric in _alarm_metrics(alarm)}
    missing = [seed for seed, wanted in SEED_THRESHOLDS.items() if wanted not in index]
    assert not missing, missing
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_every_pollen_metric_an_alarm_watches_is_emitted_by_the_code(template: dict[str, Any]) -> None:
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    watched = set()
    for alarm in alarms:
        props = alarm["Properties"]
        if props.get("Namespace") == "Pollen":
            watched.add(props["MetricName"])
        for metric in props.get("Metrics", []):
            if "MetricStat" in metric and metric["MetricStat"]["Metric"]["Namespace"] == "Pollen":
                watched.add(metric["MetricStat"]["Metric"]["MetricName"])
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "pollen").rglob("*.py"))
    missing = sorted(name for name in watched if f'"{name}"' not in source)
    assert not missing, f"alarms watch metrics no code emits: {missing}"


def test_secret_has_no_value_in_the_template(template: dict[str, Any]) -> None:
    (secret,) = _resources(template, "AWS::SecretsManager::Secret").values()
    assert "SecretString" not in secret["Properties"]
    assert "GenerateSecretString" not in secret["Properties"]


def test_an_empty_opensearch_endpoint_leaves_stream_sync_out(template: dict[str, Any]) -> None:
    """Every resource of stream sync exists only with an endpoint: never a function indexing into /tmp."""
    condition = template["Conditions"]["HasOpenSearch"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OpenSearchEndpoint"}, ""]}]}
    resources = template["Resources"]
    for name in ("StreamSyncFunction", "StreamSyncRole", "StreamSyncLogGroup", "StreamSyncErrorsAlarm"):
        assert resources[name].get("Condition") == "HasOpenSearch", name
    unconditional = {n: r for n, r in resources.items() if r.get("Condition") != "HasOpenSearch"}
    assert "StreamSyncFunction" not in repr({n: r for n, r in unconditional.items() if n != "Dashboard"}), (
        "an unconditional resource refers to the stream-sync function"
    )
    dashboard = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert dashboard[1]["StreamSyncFunctionName"]["Fn::If"][0] == "HasOpenSearch"


def test_tombstones_are_purged_on_a_schedule(template: dict[str, Any]) -> None:
    import json

    from pollen.handlers.stream_sync import PURGE_ACTION

    events = template["Resources"]["StreamSyncFunction"]["Properties"]["Events"]
    (purge,) = [e for e in events.values() if e["Type"] == "Schedule"]
    assert json.loads(purge["Properties"]["Input"]) == {"action": PURGE_ACTION}
    assert purge["Properties"]["Schedule"] == "rate(6 hours)"  # docs/streams.md gives this cadence


def _references(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(name, where) for every !Ref and ${name} in !Sub below value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                yield item, path
            elif key == "Fn::Sub" and isinstance(item, str):
                for name in re.findall(r"\$\{([^}.!]+)\}", item):
                    yield name, path
            else:
                yield from _references(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _references(item, path)


def _settings_fields_read_by_code() -> dict[str, str]:
    """Environment variable -> Settings field, for the fields some code outside settings.py reads."""
    from pollen.settings import Settings

    source = "\n".join(p.read_text() for p in (ROOT / "src" / "pollen").rglob("*.py") if p.name != "settings.py")
    read: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", [])
        if re.search(rf"\.{name}\b", source):
            read |= {str(alias): name for alias in aliases}
    return read


#: Variables the template sets that Powertools reads itself.
LIBRARY_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


def test_every_environment_variable_the_template_sets_is_read_by_the_code(template: dict[str, Any]) -> None:
    read = _settings_fields_read_by_code()
    functions = _resources(template, "AWS::Serverless::Function").values()
    variables = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for function in functions:
        variables |= set(function["Properties"].get("Environment", {}).get("Variables", {}))
    unread = sorted(variables - set(read) - LIBRARY_VARIABLES)
    assert not unread, f"the template sets variables no code reads: {unread}"


def test_every_parameter_has_an_effect(template: dict[str, Any]) -> None:
    """Each parameter either sets a variable that code reads (through a Settings field) or a resource property."""
    read = _settings_fields_read_by_code()
    effects: dict[str, list[str]] = {name: [] for name in template["Parameters"]}
    sections = {"Globals": template["Globals"], "Resources": template["Resources"], "Conditions": {}}
    for section, body in sections.items():
        for name, where in _references(body, (section,)):
            if name not in effects:
                continue
            if "Variables" in where:
                variable = where[where.index("Variables") + 1]
                if variable in read:
                    effects[name].append(f"{variable} -> Settings.{read[variable]}")
            else:
                effects[name].append("/".join(where))
    without = sorted(name for name, found in effects.items() if not found)
    assert not without, f"parameters with no effect: {without}"
    assert any("Settings.pollenate_batch" in e for e in effects["PollenateBatchPerRun"])
