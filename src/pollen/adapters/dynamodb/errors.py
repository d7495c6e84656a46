"""Translation of botocore errors from DynamoDB calls into pollen's errors, at the adapter edge (the shared
translation lives in :mod:`pollen.aws`; this module keeps the DynamoDB adapter's names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pollen.aws import (
    THROTTLING_CODES,
    TRANSIENT_CODES,
    MissingResource,
    error_code,
    unreachable_reason,
)
from pollen.aws import translate as translate_aws
from pollen.errors import PollenError

__all__ = [
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "MissingResource",
    "error_code",
    "translate",
    "unreachable_reason",
]


def translate(exc: Exception, *, keys: Sequence[Mapping[str, Any]] = (), action: str = "") -> PollenError:
    """Map a botocore exception from a DynamoDB call to a PollenError (the caller raises it ``from exc``)."""
    return translate_aws(exc, service="dynamodb", keys=keys, action=action)
