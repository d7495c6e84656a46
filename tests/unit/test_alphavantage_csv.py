"""The calendar CSV as Alpha Vantage streams it: quoted fields keep their embedded line breaks, however the body is
cut into chunks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pollen.adapters.alphavantage import AlphaVantageClient

CSV = (
    "symbol,name,reportDate,fiscalDateEnding,estimate,currency,timeOfTheDay\r\n"
    'IBM,"International Business\nMachines",2026-10-20,2026-09-30,2.1,USD,post-market\r\n'
    'ACME,"Acme ""Rockets""\r\nand Co, Ltd",2026-10-21,2026-09-30,,USD,\r\n'
    "ZZZ,Plain Name,2026-10-22,2026-09-30,0.5,USD,pre-market\r\n"
)


class Chunked(httpx.SyncByteStream):
    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 10_000])
def test_quoted_fields_keep_their_embedded_newlines(chunk: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Chunked(CSV.encode(), chunk)))
    client = AlphaVantageClient("key", base_url="http://av.test", http=httpx.Client(transport=transport))
    rows = list(client.earnings_calendar("3month"))
    assert [r["name"] for r in rows] == [
        "International Business\nMachines",
        'Acme "Rockets"\r\nand Co, Ltd',
        "Plain Name",
    ]
    assert [r["timeOfTheDay"] for r in rows] == ["post-market", "", "pre-market"]
