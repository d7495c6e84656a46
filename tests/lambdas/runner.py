"""A Lambda-like runtime loop, run by the runtime's Python (python3.13) with only the artifact, its layers and boto3
on the path; standard library only, imported from no test module.

Imports ``_HANDLER`` once (the cold start), then serves invocations one by one, like the Lambda runtime interface:
one JSON request per line on stdin (``{"event": ..., "request_id": ...}``), one JSON response per line on the file
descriptor ``RUNNER_RESPONSE_FD``. The handler's own stdout and stderr are the function's log, as in Lambda.
"""

import importlib
import json
import os
import sys
import time
import traceback


class LambdaContext:
    """What Lambda passes as ``context`` (the attributes of the python runtime's context object)."""

    def __init__(self, request_id: str, deadline_s: float) -> None:
        name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        region = os.environ["AWS_REGION"]
        self.aws_request_id = request_id
        self.function_name = name
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_s = deadline_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline_s - time.monotonic()) * 1000))


def main() -> int:
    out = os.fdopen(int(os.environ["RUNNER_RESPONSE_FD"]), "w", buffering=1)
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # an init error, reported like Lambda's Runtime.ImportModuleError
        out.write(json.dumps({"init_error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}) + "\n")
        return 1
    import_s = time.perf_counter() - started
    packages = sorted({name.partition(".")[0] for name in sys.modules})
    out.write(json.dumps({"ready": True, "import_s": import_s, "packages": packages}) + "\n")
    timeout_s = float(os.environ["POLLEN_HARNESS_TIMEOUT_S"])
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], time.monotonic() + timeout_s)
        try:
            result = handler(request["event"], context)
            response = {"result": result}
        except Exception as exc:
            response = {"error": type(exc).__name__, "message": str(exc), "trace": traceback.format_exc()}
        sys.stdout.flush()
        sys.stderr.flush()
        out.write(json.dumps(response, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
