"""The pgoutput decoder on messages captured from PostgreSQL 18
(``pg_logical_slot_get_binary_changes``, see captured/pgoutput.json): every message kind of
protocol versions 1 and 2, TOAST "unchanged" markers, key and full old tuples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridshop.datastream import pgoutput as po

CAPTURED = json.loads((Path(__file__).parent / "captured" / "pgoutput.json").read_text())


def _v1() -> list[po.Decoded]:
    return [po.decode(bytes.fromhex(h)) for h in CAPTURED["proto_v1"]]


def _v2() -> list[po.Decoded]:
    out: list[po.Decoded] = []
    in_stream = False
    for h in CAPTURED["proto_v2"]:
        msg = po.decode(bytes.fromhex(h), in_stream=in_stream)
        if isinstance(msg, po.StreamStart):
            in_stream = True
        elif isinstance(msg, po.StreamStop):
            in_stream = False
        out.append(msg)
    return out


def test_v1_transaction_framing_and_lsns() -> None:
    msgs = _v1()
    begins = [m for m in msgs if isinstance(m, po.Begin)]
    commits = [m for m in msgs if isinstance(m, po.Commit)]
    assert len(begins) == len(commits) == 9
    for begin, commit in zip(begins, commits, strict=True):
        assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
        assert begin.commit_ts_us == commit.commit_ts_us
        # Unix microseconds of 2026 (PostgreSQL's epoch is 2000-01-01)
        assert 1_700_000_000_000_000 < commit.commit_ts_us < 2_000_000_000_000_000
    assert [b.xid for b in begins] == sorted(b.xid for b in begins)


def test_v1_relation_type_and_tuples() -> None:
    msgs = _v1()
    rel = next(m for m in msgs if isinstance(m, po.Relation) and m.name == "items")
    assert (rel.namespace, rel.replica_identity) == ("public", "d")
    assert [(c.name, c.type_oid, c.is_key) for c in rel.columns] == [
        ("id", 23, True),
        ("name", 25, False),
        ("price", 1700, False),
        ("body", 25, False),
        ("m", 16385, False),
    ]
    assert rel.columns[2].typmod == (10 << 16 | 2) + 4  # numeric(10,2)
    typ = next(m for m in msgs if isinstance(m, po.TypeMsg))
    assert (typ.namespace, typ.name) == ("public", "mood")
    inserts = [m for m in msgs if isinstance(m, po.Insert) and m.relid == rel.relid]
    assert inserts[0].new == ["1", "a", "1.50", "x" * 3000, "happy"]
    assert inserts[1].new == ["2", None, "2.00", None, None]
    # after ADD COLUMN a new Relation precedes the insert, which carries one more value
    relations = [m for m in msgs if isinstance(m, po.Relation) and m.name == "items"]
    assert [c.name for c in relations[-1].columns][-1] == "extra"
    assert inserts[-1].new == ["3", None, None, None, None, "7"]


def test_v1_updates_deletes_truncate_messages() -> None:
    msgs = _v1()
    updates = [m for m in msgs if isinstance(m, po.Update)]
    toast, key_change, full = updates
    assert toast.old is None and toast.new[3] is po.UNCHANGED  # unchanged TOASTed body
    assert toast.new[:3] == ["1", "b", "1.50"]
    assert key_change.old == ["2", None, None, None, None] and key_change.old_is_key_only
    assert key_change.new[0] == "10"
    assert full.old == ["1", "x"] and not full.old_is_key_only  # REPLICA IDENTITY FULL
    (delete,) = [m for m in msgs if isinstance(m, po.Delete)]
    assert delete.old == ["10", None, None, None, None] and delete.old_is_key_only
    (truncate,) = [m for m in msgs if isinstance(m, po.Truncate)]
    logs = next(m for m in msgs if isinstance(m, po.Relation) and m.name == "logs")
    assert truncate.relids == [logs.relid] and not truncate.cascade
    assert logs.replica_identity == "f" and all(c.is_key for c in logs.columns)
    messages = [m for m in msgs if isinstance(m, po.Message)]
    assert [(m.transactional, m.prefix, m.content) for m in messages] == [
        (False, "hb", b"123"),
        (True, "tx", b"abc"),
    ]
    assert all(m.lsn > 0 for m in messages)


def test_v2_streamed_transaction_with_aborted_subtransaction() -> None:
    msgs = _v2()
    starts = [m for m in msgs if isinstance(m, po.StreamStart)]
    assert starts[0].first_segment and not any(s.first_segment for s in starts[1:])
    xid = starts[0].xid
    assert {s.xid for s in starts} == {xid}
    streamed = [m for m in msgs if isinstance(m, po.Insert) and m.xid is not None]
    assert {m.xid for m in streamed} >= {xid}
    (abort,) = [m for m in msgs if isinstance(m, po.StreamAbort)]
    assert abort.xid == xid and abort.subxid != xid
    assert any(m.xid == abort.subxid for m in streamed)  # rows of the rolled-back savepoint
    (commit,) = [m for m in msgs if isinstance(m, po.StreamCommit)]
    assert commit.xid == xid and commit.commit_lsn < commit.end_lsn
    last = [m for m in streamed if m.new[1] == "last"]
    assert len(last) == 1 and last[0].xid not in (abort.subxid,)
    # non-streamed transactions still arrive as Begin/Commit, their messages carry no xid
    assert all(m.xid is None for m in msgs if isinstance(m, po.Update))


def test_unknown_message_and_tuple_kinds_are_protocol_errors() -> None:
    with pytest.raises(po.ProtocolError, match="unknown pgoutput message type 'Z'"):
        po.decode(b"Z")
    insert = bytes.fromhex(CAPTURED["proto_v1"][3])  # I relid N ncols then 't' ...
    broken = bytearray(insert)
    broken[broken.index(b"t", 7)] = ord("q")
    with pytest.raises(po.ProtocolError, match="unknown tuple column kind 'q'"):
        po.decode(bytes(broken))


def test_lsn_text_round_trip() -> None:
    for text in ("0/0", "0/1A2B3C4", "16/B374D848", "FFFFFFFF/FFFFFFFF"):
        assert po.format_lsn(po.parse_lsn(text)) == text
