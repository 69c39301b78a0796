"""The audit log's one query (staff API and console): scope by the tenants a staff member serves (admins:
all, and the provider-wide entries), filters by actor, action, tenant and time, a cursor; and the CSV export,
safe against formula injection."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from backoffice.platform.audit.export import HEADER, csv_text, safe_cell
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.queries import audit_filter, search_audit
from backoffice.platform.errors import InputRefused, ValidationFailed

T0 = datetime(2020, 11, 20, 12, 0, tzinfo=UTC)  # before the fixtures' own entries (now)


@pytest.fixture
async def entries(database, tenants):
    """Entries written straight into the log at known times (the owner's view of history)."""
    rows = [
        (T0, tenants.a.id, "staff", "ana@provider.example", "staff.assigned", "month-end"),
        (T0 + timedelta(hours=1), tenants.b.id, "staff", "bia@provider.example", "tenant.suspended", "=cmd|' /C calc'!A0"),
        (T0 + timedelta(days=1), None, "cli", "cli:root", "staff.created", None),
        (T0 + timedelta(days=1, hours=1), tenants.a.id, "tenant_user", "admin@alfa.example", "timeline.note_added",
         "+55 11 9999"),
        (T0 + timedelta(days=2), tenants.a.id, "staff", "ana@provider.example", "staff_x.other", "-1"),
    ]
    async with database.system() as session:
        for at, tenant_id, kind, label, action, reason in rows:
            session.add(AuditEntry(occurred_at=at, tenant_id=tenant_id, actor_type=kind, actor_label=label,
                                   action=action, target_type="x", target_id=None, reason=reason,
                                   detail={"note": "@SUM(1)"}))
    return rows


async def _actions(database, tenant_ids, limit=50, **given):
    async with database.system() as session:
        page = await search_audit(session, tenant_ids=tenant_ids, filters=audit_filter(**given), limit=limit)
    return [e.action for e in page.entries if e.occurred_at < T0 + timedelta(days=3)]


async def test_admins_see_everything_operators_only_their_tenants(database, tenants, entries):
    everything = await _actions(database, None)
    assert everything == ["staff_x.other", "timeline.note_added", "staff.created", "tenant.suspended",
                          "staff.assigned"]
    alfa_only = await _actions(database, [tenants.a.id])
    assert alfa_only == ["staff_x.other", "timeline.note_added", "staff.assigned"]
    # An operator of alfa asking for beta, or for the provider's own entries, finds nothing.
    assert await _actions(database, [tenants.a.id], tenant=str(tenants.b.id)) == []
    assert await _actions(database, [tenants.a.id], tenant="provider") == []
    assert await _actions(database, [], tenant=None) == []
    assert await _actions(database, None, tenant="provider") == ["staff.created"]


async def test_filters_by_actor_action_prefix_tenant_and_time(database, tenants, entries):
    assert await _actions(database, None, actor="ANA@") == ["staff_x.other", "staff.assigned"]
    assert await _actions(database, None, action="staff.") == ["staff.created", "staff.assigned"]
    assert await _actions(database, None, action="staff_") == ["staff_x.other"]  # "_" is not a wildcard
    assert await _actions(database, None, tenant=str(tenants.b.id)) == ["tenant.suspended"]
    assert await _actions(database, None, since="2020-11-21", until="2020-11-21") == [
        "timeline.note_added", "staff.created"]
    assert await _actions(database, None, since="2020-11-20T12:30:00+00:00", until="2020-11-21T12:00:00Z") == [
        "tenant.suspended"]


async def test_the_cursor_walks_every_page_once(database, tenants, entries):
    seen, cursor = [], None
    async with database.system() as session:
        while True:
            page = await search_audit(session, tenant_ids=None, filters=audit_filter(until="2020-11-23"), limit=2,
                                      cursor=cursor)
            seen += [e.action for e in page.entries]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        with pytest.raises(InputRefused) as raised:
            await search_audit(session, tenant_ids=None, cursor="bm9wZQ")
        assert raised.value.errors[0].field == "cursor"
        with pytest.raises(ValidationFailed) as raised:
            await search_audit(session, tenant_ids=None, limit=10_000)
        assert raised.value.errors[0].field == "limit"
    assert seen == await _actions(database, None) and len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize("given, fields", [
    ({"since": "2026-13-01"}, ["since"]),
    ({"until": "yesterday"}, ["until"]),
    ({"since": "2020-11-20T10:00:00"}, ["since"]),  # no offset: which day's 10:00?
    ({"since": "9999999999-01-01"}, ["since"]),
    ({"since": "2020-11-22", "until": "2020-11-20"}, ["until"]),
    ({"actor": "a\x00b", "action": "x" * 65}, ["actor", "action"]),
    ({"tenant": "alfa"}, ["tenant"]),
    ({"since": "1" * 5000}, ["since"]),
])
def test_bad_filters_are_named(given, fields):
    with pytest.raises(ValidationFailed) as raised:
        audit_filter(**given)
    assert [e.field for e in raised.value.errors] == fields


def test_csv_cells_that_would_run_as_formulas_are_escaped():
    for dangerous in ("=1+1", "+55", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("ana@provider.example") == "ana@provider.example"
    assert safe_cell(None) == ""


async def test_the_csv_export_quotes_and_escapes_every_cell(database, tenants, entries):
    async with database.system() as session:
        page = await search_audit(session, tenant_ids=None, filters=audit_filter(until="2020-11-23"))
    rows = list(csv.reader(io.StringIO(csv_text(page.entries, header=True))))
    assert tuple(rows[0]) == HEADER
    by_action = {row[5]: row for row in rows[1:]}
    assert by_action["tenant.suspended"][8] == "'=cmd|' /C calc'!A0"
    assert by_action["timeline.note_added"][8] == "'+55 11 9999"
    assert by_action["staff_x.other"][8] == "'-1"
    assert by_action["staff.created"][1] == ""  # provider-wide: no tenant
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert uuid.UUID(by_action["staff.assigned"][1]) == tenants.a.id
