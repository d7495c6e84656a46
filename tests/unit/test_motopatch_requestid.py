"""motopatch's ``requestid`` part against moto's own ``_enrich_response``, on random bodies and headers."""

from __future__ import annotations

from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.responses import BaseResponse
from moto.moto_api._internal import mock_random

from pollen.local import motopatch
from pollen.local.motopatch import requestid

pytestmark = pytest.mark.skipif(
    moto.__version__ != motopatch.PATCHED_MOTO_VERSION, reason="the speed-ups apply to one moto version only"
)

fragments = st.sampled_from(["<RequestId>", "</RequestId>", "<RequestId>abc</RequestId>", '{"Items":[]}', "\n", "x"])
bodies = st.one_of(
    st.lists(st.one_of(fragments, st.text(max_size=8)), max_size=8).map("".join),
    st.binary(max_size=20),
    st.none(),
)
headers = st.dictionaries(
    st.sampled_from(["status", "content-type", "x-amz-crc32"]), st.one_of(st.integers(), st.text())
)


def _run(enrich: Any, head: dict[str, Any], body: Any) -> tuple[dict[str, Any], Any]:
    mock_random.seed(7)  # the same request id for both
    return enrich(dict(head), body)  # type: ignore[no-any-return]


@settings(max_examples=300, deadline=None)
@given(head=headers, body=bodies)
def test_the_answer_is_motos_own(head: dict[str, Any], body: Any) -> None:
    assert _run(requestid.enrich_response, head, body) == _run(BaseResponse._enrich_response, head, body)


def test_an_xml_request_id_is_still_written() -> None:
    patched_headers, patched_body = _run(requestid.enrich_response, {}, "<R><RequestId>old</RequestId></R>")
    assert patched_body == f"<R><RequestId>{patched_headers['x-amzn-requestid']}</RequestId></R>"
