from __future__ import annotations

from pathlib import Path

from pollen.adapters.search.embedded import EmbeddedSearchIndex, fts_query
from pollen.streams.records import Change, version_key


def upsert(doc_id: str, seq: int, doc: dict[str, object], table: str = "companyOverview") -> Change:
    return Change(table, doc_id, "upsert", version_key(str(seq)), {"symbol": doc_id, **doc}, str(seq))


def delete(doc_id: str, seq: int, table: str = "companyOverview") -> Change:
    return Change(table, doc_id, "delete", version_key(str(seq)), None, str(seq))


BASE = 10**21


def test_newer_version_wins_in_any_order(tmp_path: Path) -> None:
    changes = [upsert("A", BASE + 1, {"Name": "one"}), upsert("A", BASE + 3, {"Name": "three"}), delete("A", BASE + 2)]
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2, 1, 0]):
        index = EmbeddedSearchIndex(tmp_path / f"{order}.sqlite")
        for i in order:
            index.apply([changes[i]])
        assert index.get("companyOverview", "A") == {"symbol": "A", "Name": "three"}
        index.close()


def test_tombstone_blocks_late_upserts_until_purged(tmp_path: Path) -> None:
    now = [1000.0]
    index = EmbeddedSearchIndex(tmp_path / "i.sqlite", clock=lambda: now[0])
    index.apply([upsert("A", BASE + 1, {"Name": "apple"})])
    result = index.apply([delete("A", BASE + 5)])
    assert len(result.deleted) == 1
    late = index.apply([upsert("A", BASE + 4, {"Name": "late"})])
    assert len(late.conflicts) == 1
    assert index.get("companyOverview", "A") is None
    assert index.search("apple") == [] and index.search("late") == []
    assert index.counts() == {"documents": 0, "tombstones": 1}
    now[0] += 10
    assert index.purge_tombstones(older_than_s=60) == 0
    now[0] += 100
    assert index.purge_tombstones(older_than_s=60) == 1
    assert index.version_of("companyOverview", "A") is None


def test_search_ranks_with_bm25(tmp_path: Path) -> None:
    index = EmbeddedSearchIndex(tmp_path / "i.sqlite")
    index.apply(
        [
            upsert("AAPL", BASE + 1, {"Name": "Apple Inc", "Description": "Phones and computers"}),
            upsert("MSFT", BASE + 2, {"Name": "Microsoft", "Description": "Software; partner of apple retailers"}),
            upsert("X", BASE + 3, {"Name": "Other"}, table="assets"),
        ]
    )
    hits = index.search("apple")
    assert [h.doc_id for h in hits] == ["AAPL", "MSFT"]  # a title match outranks a body match
    assert hits[0].score > hits[1].score > 0
    assert [h.doc_id for h in index.search("micro")] == ["MSFT"]  # the last word is a prefix
    assert index.search("apple", table="assets") == []
    assert index.search('"; DROP TABLE documents; --') == []
    assert fts_query('say "hi"') == '"say" """hi"""*'


def test_index_is_durable(tmp_path: Path) -> None:
    index = EmbeddedSearchIndex.in_home(tmp_path)
    index.apply([upsert("A", BASE + 1, {"Name": "kept"})])
    index.close()
    reopened = EmbeddedSearchIndex.in_home(tmp_path)
    assert reopened.get("companyOverview", "A") == {"symbol": "A", "Name": "kept"}
    assert [h.doc_id for h in reopened.search("kept")] == ["A"]
