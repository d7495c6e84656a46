"""Speed-ups for moto's DynamoDB, applied by pollen's embedded server only, to the moto version they were checked on.

Each part keeps moto's behaviour byte for byte and is documented in its module (what moto does, what the patch does,
why it is equivalent); ``tests/integration/test_motopatch_differential.py`` sends the same random operations to a
stock and a patched server and compares the responses.

- ``serializer``: attribute values (and a page of items) serialized directly instead of through botocore's model.
- ``ordering``: Query and Scan sort on native key values computed once; a base-table Query reads its partition only;
  a Scan page walks its segment from its start key, not the whole table.
- ``transactions``: TransactWriteItems saves and restores the items it addresses, not deep copies of whole tables.
- ``itemsize``: an item's size summed once while it is built, and remembered during a Query or Scan.
- ``projection``: a projection converts only the projected attributes; a projected Query or Scan does not deep-copy
  the items it projects, nor size the projected items again, and shares the values the projection leaves as they are.
- ``streamrecords``: GetRecords' stream records serialized directly instead of through botocore's model.
- ``pages``: a later page of a Query or Scan passes over the earlier ones with the start key converted once; a
  segmented Scan hashes each hash key once.
- ``requestid``: a DynamoDB answer's JSON body is not searched for an XML ``<RequestId>`` element.
- ``collector``: the server's garbage collector runs full collections far less often (no response changes).
"""

from __future__ import annotations

import logging

import moto

#: The moto release the parts were read against and checked on; any other runs stock.
PATCHED_MOTO_VERSION = "5.2.5"

logger = logging.getLogger(__name__)

_applied = False


def apply() -> bool:
    """Apply every part (once) if moto is the version they were checked on; True when applied."""
    global _applied
    if _applied:
        return True
    if moto.__version__ != PATCHED_MOTO_VERSION:
        logger.warning(
            "moto %s is not %s, the version pollen's DynamoDB speed-ups were checked on: running stock moto",
            moto.__version__,
            PATCHED_MOTO_VERSION,
        )
        return False
    from pollen.local.motopatch import (
        collector,
        itemsize,
        ordering,
        pages,
        projection,
        requestid,
        serializer,
        streamrecords,
        transactions,
    )

    serializer.apply()
    ordering.apply()
    projection.apply()  # after ordering: it wraps the Table.query ordering installs
    transactions.apply()
    itemsize.apply()
    streamrecords.apply()  # after serializer: it replaces that part's registration for DynamoDB Streams
    pages.apply()
    requestid.apply()
    collector.apply()
    _applied = True
    return True
