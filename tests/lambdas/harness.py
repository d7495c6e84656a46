"""A Lambda-like harness for the artifacts ``sam build`` produces.

- :func:`build_artifacts`: ``sam build`` of an x86_64 copy of template.yaml (these machines are x86_64), cached on
  disk by the hash of its inputs and shared between test processes through a file lock.
- :class:`StackResources`: the stack's tables, queues and secret, created on moto's server *from template.yaml*, and
  the template's references (``!Ref``, ``!Sub``, ``!GetAtt``) resolved to them.
  Scenarios read outcomes back with :meth:`StackResources.scan` and :meth:`StackResources.receive_all` (dead-letter
  queues too), and can change the secret between warm invocations (``put_secret_value`` on ``refs["ApiKeysSecret"]``,
  with the simulator's ``configure`` refusing the old keys).
- :class:`LambdaContainer`: one function's container: python3.13 with only boto3 installed, the artifact (and its
  layers) on the path, the function's environment from the template, a private ``/tmp``, and ``runner.py`` serving
  warm invocations over stdin and a response pipe.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
RUNNER = Path(__file__).with_name("runner.py")
CACHE = ROOT / ".aws-sam" / "harness"
STACK = "pollen-harness"
REGION = "us-east-1"
ACCOUNT = "123456789012"
#: The temporary credentials the harness gives every function, as Lambda gives the role's (moto takes any; the
#: OpenSearch stand-in verifies signatures made with these).
ACCESS_KEY_ID = "ASIAHARNESS000000000"
SECRET_ACCESS_KEY = "harness-secret-access-key"
SESSION_TOKEN = "harness-session-token"
#: boto3 and what it needs: all the runtime venv holds besides pip (the Lambda runtime provides boto3).
BOTO3_CLOSURE = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "python-dateutil", "six")


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


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)
    return data


# ---------------------------------------------------------------------------------------------------- tools


def find_python313() -> str | None:
    """The Lambda runtime's Python: $POLLEN_LAMBDA_PYTHON, python3.13 on PATH, or a pyenv 3.13 install."""
    candidates = [os.environ.get("POLLEN_LAMBDA_PYTHON", ""), shutil.which("python3.13") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.13*/bin/python3.13")), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None


def find_sam() -> str | None:
    """The SAM CLI: $POLLEN_SAM, the one ./dev installs (.tools), or sam on PATH."""
    for candidate in (os.environ.get("POLLEN_SAM", ""), str(ROOT / ".tools/bin/sam"), shutil.which("sam") or ""):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    paths = [TEMPLATE, *(p for folder in ("src", "layers", "lambda") for p in sorted((ROOT / folder).rglob("*")))]
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def x86_64_template(text: str) -> str:
    """template.yaml for x86_64: every architecture the template names (functions, layers) rewritten."""
    return re.sub(r"\barm64\b", "x86_64", text)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_artifacts(sam: str, python313: str) -> Path:
    """``sam build`` of the x86_64 copy of the template; the build directory (one folder per function and layer)."""
    target = CACHE / f"build-{_inputs_digest()}"
    with _locked(CACHE / "build.lock"):
        if (target / "template.yaml").is_file():
            return target
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        template = target.parent / f"{target.name}.template.yaml"
        template.write_text(x86_64_template(TEMPLATE.read_text()))
        env = {
            **os.environ,
            "SAM_CLI_TELEMETRY": "0",
            "PATH": f"{Path(python313).parent}{os.pathsep}{os.environ['PATH']}",
        }
        result = subprocess.run(
            [sam, "build", "-t", str(template), "--base-dir", str(ROOT), "-b", str(target)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=1200,
        )
        if result.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"sam build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return target


def runtime_venv(python313: str) -> Path:
    """A python3.13 venv holding only boto3 and its dependencies, at the lock's versions (hash-checked)."""
    lock = (ROOT / "requirements/lock.txt").read_text()
    wanted = list(re.finditer(r"^([a-z0-9_.-]+)==\S+ \\\n(?:\s+--hash=\S+(?: \\)?\n)+", lock, re.M))
    assert set(BOTO3_CLOSURE) <= {m.group(1) for m in wanted}, "lock.txt lacks part of boto3's closure"
    pins = "".join(m.group(0) for m in wanted if m.group(1) in BOTO3_CLOSURE)
    target = CACHE / f"runtime-{hashlib.sha256(pins.encode()).hexdigest()[:16]}"
    with _locked(CACHE / "runtime.lock"):
        if (target / ".complete").is_file():
            return target
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([python313, "-m", "venv", str(target)], check=True)
        (target / "requirements.txt").write_text(pins)
        subprocess.run(
            [
                str(target / "bin/python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--require-hashes",
                "--no-deps",
                "-r",
                str(target / "requirements.txt"),
            ],
            check=True,
            timeout=600,
        )
        (target / ".complete").write_text("ok")
    return target


# ---------------------------------------------------------------------------------------------------- stack


@dataclass
class StackResources:
    """The template's tables, queues and secret on moto's server, and its references resolved to them."""

    template: dict[str, Any]
    endpoint: str
    secret_value: Mapping[str, str]
    parameters: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)

    def __post_init__(self) -> None:
        for name, spec in self.template["Parameters"].items():
            self.parameters.setdefault(name, spec.get("Default", ""))

    def condition(self, name: str) -> bool:
        """A condition of the template's ``Conditions``, evaluated with the stack's parameters."""
        return bool(self._evaluate(self.template["Conditions"][name]))

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, arg),) = expression.items()
            if key == "Fn::Not":
                return not self._evaluate(arg[0])
            if key == "Fn::Equals":
                return self._evaluate(arg[0]) == self._evaluate(arg[1])
            if key == "Fn::And":
                return all(self._evaluate(item) for item in arg)
            if key == "Fn::Or":
                return any(self._evaluate(item) for item in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Ref":
                return str(self._ref(arg))
        return str(expression)

    def resources(self) -> dict[str, dict[str, Any]]:
        """The template's resources that are part of this stack (their ``Condition``, if any, holds)."""
        return {
            logical: resource
            for logical, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def create(self) -> StackResources:
        resources = self.resources()
        dynamodb, sqs, secrets = self.client("dynamodb"), self.client("sqs"), self.client("secretsmanager")
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::DynamoDB::Table":
                props = resource["Properties"]
                request = {key: props[key] for key in ("KeySchema", "AttributeDefinitions", "BillingMode")}
                request["TableName"] = self.resolve(props["TableName"])
                if "GlobalSecondaryIndexes" in props:
                    request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
                if "StreamSpecification" in props:
                    request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
                table = dynamodb.create_table(**request)["TableDescription"]
                self.refs[logical] = table["TableName"]
                self.attributes[(logical, "Arn")] = table["TableArn"]
                if "LatestStreamArn" in table:
                    self.attributes[(logical, "StreamArn")] = table["LatestStreamArn"]
        # Dead-letter queues first: a redrive policy names its target's ARN.
        queues = sorted(
            (logical for logical, r in resources.items() if r["Type"] == "AWS::SQS::Queue"),
            key=lambda logical: "RedrivePolicy" in resources[logical].get("Properties", {}),
        )
        for logical in queues:
            props = resources[logical].get("Properties", {})
            attributes = {
                key: str(props[key]) for key in ("VisibilityTimeout", "MessageRetentionPeriod") if key in props
            }
            if "RedrivePolicy" in props:
                policy = props["RedrivePolicy"]
                attributes["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": self.resolve(policy["deadLetterTargetArn"]),
                        "maxReceiveCount": policy["maxReceiveCount"],
                    }
                )
            url = sqs.create_queue(QueueName=f"{STACK}-{logical}", Attributes=attributes)["QueueUrl"]
            self.refs[logical] = url
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.attributes[(logical, "Arn")] = arn
            self.attributes[(logical, "QueueName")] = f"{STACK}-{logical}"
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::SecretsManager::Secret":
                name = self.resolve(resource["Properties"]["Name"])
                created = secrets.create_secret(Name=name, SecretString=json.dumps(dict(self.secret_value)))
                self.refs[logical] = created["ARN"]  # !Ref of a secret is its ARN
        return self

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self.attributes[(arg[0], arg[1])]
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), arg)
        return value

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return str(self.parameters[name])
        pseudo = {"AWS::StackName": STACK, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
        return pseudo.get(name) or self.refs[name]

    def _sub(self, expression: str) -> str:
        if "." in expression and not expression.startswith("AWS::"):
            logical, attribute = expression.split(".", 1)
            return self.attributes[(logical, attribute)]
        return self._ref(expression)

    # ---- reading outcomes back (tables, queues: dead letters included)

    def scan(self, logical: str) -> list[dict[str, Any]]:
        """Every item of a table of the template, by its logical id."""
        paginator = self.client("dynamodb").get_paginator("scan")
        return [item for page in paginator.paginate(TableName=self.refs[logical]) for item in page["Items"]]

    def receive_all(self, logical: str) -> list[dict[str, Any]]:
        """Every visible message of a queue of the template (PollenateQueue, WriteDeadLetterQueue, ...), received
        with a long visibility timeout so that each comes once."""
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while True:
            page = sqs.receive_message(
                QueueUrl=self.refs[logical],
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=600,
            ).get("Messages", [])
            if not page:
                return messages
            messages += page

    # ---- functions

    def function(self, logical: str) -> dict[str, Any]:
        """A function's properties with the template's Globals applied (it must be part of the stack)."""
        globals_ = self.template.get("Globals", {}).get("Function", {})
        resources = self.resources()
        assert logical in resources, f"{logical} is not part of the stack with {self.parameters}"
        props = resources[logical]["Properties"]
        merged = {**globals_, **props}
        merged["Environment"] = {
            "Variables": {
                **globals_.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
        }
        return merged

    def function_environment(self, logical: str) -> dict[str, str]:
        variables = self.function(logical)["Environment"]["Variables"]
        return {name: str(self.resolve(value)) for name, value in variables.items()}


# ---------------------------------------------------------------------------------------------------- containers


def artifact_size(path: Path) -> int:
    """Bytes of every file under path (what Lambda counts as the unzipped size)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _snapshot(paths: list[Path]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for root in paths:
        for path in root.rglob("*"):
            stat = path.lstat()
            found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


class LambdaContainer:
    """One warm container of one function: started once (the cold start), then invoked any number of times."""

    def __init__(
        self,
        *,
        logical: str,
        build_dir: Path,
        runtime: Path,
        stack: StackResources,
        tmp: Path,
        extra_env: Mapping[str, str],
    ) -> None:
        self.logical = logical
        self.config = stack.function(logical)
        self.name = str(stack.resolve(self.config["FunctionName"]))
        self.task_root = build_dir / logical
        self.layers = [build_dir / layer["Ref"] / "python" for layer in self.config.get("Layers", [])]
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        environment = stack.function_environment(logical)
        for name, value in environment.items():
            if value == "/tmp" or value.startswith("/tmp/"):
                environment[name] = str(tmp) + value[len("/tmp") :]  # the function's /tmp is this folder
        self.environment = {
            "PATH": f"{runtime / 'bin'}:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "TMPDIR": str(tmp),
            "HOME": str(tmp),
            "PYTHONPATH": os.pathsep.join(str(p) for p in [self.task_root, *self.layers]),
            # /var/task is read-only in Lambda: Python cannot write bytecode caches next to the code.
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "_HANDLER": self.config["Handler"],
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.config["MemorySize"]),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/12/03/[$LATEST]{uuid.uuid4().hex}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # Lambda gives the role's temporary credentials; moto takes any.
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_SESSION_TOKEN": SESSION_TOKEN,
            "POLLEN_HARNESS_TIMEOUT_S": str(self.config["Timeout"]),
            **environment,
            **extra_env,
        }
        self.stdout_path = tmp.parent / f"{tmp.name}.stdout.log"
        self.stderr_path = tmp.parent / f"{tmp.name}.stderr.log"
        self._process: subprocess.Popen[str] | None = None
        self._responses: Any = None
        self._before: dict[str, tuple[int, int]] = {}
        self.import_s: float | None = None
        #: Top-level packages in sys.modules once the handler module is imported (the cold start).
        self.imported_packages: set[str] = set()

    def start(self) -> LambdaContainer:
        self._before = _snapshot([self.task_root, *[p.parent for p in self.layers]])
        read_fd, write_fd = os.pipe()
        env = {**self.environment, "RUNNER_RESPONSE_FD": str(write_fd)}
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self._process = subprocess.Popen(
                [str(Path(self.environment["PATH"].split(":")[0]) / "python"), str(RUNNER)],
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                text=True,
                env=env,
                cwd=self.task_root,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        self._responses = os.fdopen(read_fd, "r")
        ready = self._read()
        if "init_error" in ready:
            raise RuntimeError(f"{self.logical} failed to initialise: {ready['trace']}\n{self.output()}")
        self.import_s = float(ready["import_s"])
        self.imported_packages = set(ready["packages"])
        return self

    def _read(self) -> dict[str, Any]:
        line = self._responses.readline()
        if not line:
            raise RuntimeError(f"{self.logical} exited ({self._process and self._process.poll()}):\n{self.output()}")
        response: dict[str, Any] = json.loads(line)
        return response

    def invoke(self, event: Any) -> dict[str, Any]:
        """One invocation; ``{"result": ...}`` or ``{"error": ..., "message": ..., "trace": ...}``."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps({"event": event, "request_id": str(uuid.uuid4())}) + "\n")
        self._process.stdin.flush()
        return self._read()

    def result(self, event: Any) -> Any:
        response = self.invoke(event)
        assert "result" in response, f"{self.logical}: {response.get('trace')}\n{self.output()[-4000:]}"
        return response["result"]

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._responses.close()

    def writes_outside_tmp(self) -> list[str]:
        """Files the function created or changed in its code and layers (Lambda allows writes to /tmp only)."""
        after = _snapshot([self.task_root, *[p.parent for p in self.layers]])
        return sorted(path for path, state in after.items() if self._before.get(path) != state)


# ---------------------------------------------------------------------------------------------------- events


def scheduled_event(rule: str, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event EventBridge sends a function on a schedule (detail is {} unless the rule gives an Input)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-12-03T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": dict(detail or {}),
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda SQS event for messages received from moto's SQS."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


def stream_records(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record on a table's stream (GetRecords from TRIM_HORIZON), in the Lambda DynamoDB event's shape."""
    records: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                dynamodb = dict(record["dynamodb"])
                created = dynamodb.get("ApproximateCreationDateTime")
                if created is not None and hasattr(created, "timestamp"):
                    dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
                records.append(
                    {
                        "eventID": record["eventID"],
                        "eventName": record["eventName"],
                        "eventVersion": record.get("eventVersion", "1.1"),
                        "eventSource": "aws:dynamodb",
                        "awsRegion": REGION,
                        "dynamodb": _json_safe(dynamodb),
                        "eventSourceARN": stream_arn,
                    }
                )
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def _json_safe(value: Any) -> Any:
    """Stream images as the Lambda event carries them: binary attributes base64 in JSON."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_json_safe(item) for item in value]
    return value


def require_tools() -> tuple[str, str]:
    """python3.13 and sam, or a skip (a loud failure in CI, where the tier must run)."""
    import pytest

    python313, sam = find_python313(), find_sam()
    missing = [
        what for what, found in (("python3.13", python313), ("sam (./dev sam, or POLLEN_SAM)", sam)) if not found
    ]
    if missing:
        message = f"the Lambda harness needs {' and '.join(missing)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (CI must run this tier)", pytrace=False)
        pytest.skip(message)
    assert python313 is not None and sam is not None
    return python313, sam
