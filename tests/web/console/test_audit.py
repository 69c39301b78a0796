"""The audit log page and its CSV export: the same query as the staff API, scoped to the companies a staff
member serves (admins: every one, and the provider's own entries), filters named when bad, a cursor, and a
CSV that a spreadsheet opens without running a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from backoffice.platform.audit.models import AuditEntry

T0 = datetime(2021, 3, 10, 15, 0, tzinfo=UTC)


async def _entries(database, tenants):
    async with database.system() as session:
        for n, (tenant_id, action, reason) in enumerate((
                (tenants.a.id, "staff.assigned", "=HYPERLINK(\"http://evil\")"),
                (tenants.b.id, "tenant.suspended", "beta segredo"),
                (None, "staff.created", "provider-wide"))):
            session.add(AuditEntry(occurred_at=T0 + timedelta(minutes=n), tenant_id=tenant_id, actor_type="staff",
                                   actor_label="ana@provider.example", action=action, target_type="x",
                                   target_id=None, reason=reason, detail={}))


def _table(html: str) -> str:
    return html.split('id="audit"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]


async def test_admins_see_every_entry_operators_only_their_companies(admin_client, operator_client, database):
    await _entries(database, admin_client.tenants)
    everything = _table((await admin_client.get("/staff/audit?since=2021-03-10&until=2021-03-10")).text)
    assert "beta segredo" in everything and "provider-wide" in everything and "HYPERLINK" in everything
    theirs = _table((await operator_client.get("/staff/audit?since=2021-03-10&until=2021-03-10")).text)
    assert "HYPERLINK" in theirs and "beta segredo" not in theirs and "provider-wide" not in theirs
    for company in ("beta", "provider", "nenhuma"):
        answer = await operator_client.get(f"/staff/audit?company={company}")
        assert answer.status_code == 422 and "beta segredo" not in answer.text, company
    only_provider = _table((await admin_client.get("/staff/audit?company=provider&since=2021-03-10")).text)
    assert "provider-wide" in only_provider and "HYPERLINK" not in only_provider


async def test_filters_and_the_cursor(admin_client, database):
    await _entries(database, admin_client.tenants)
    by_action = _table((await admin_client.get("/staff/audit?action=staff.&until=2021-03-10")).text)
    assert "HYPERLINK" in by_action and "provider-wide" in by_action and "beta segredo" not in by_action
    by_actor = _table((await admin_client.get("/staff/audit?actor=ANA@&until=2021-03-10")).text)
    assert by_actor.count("<tr>") == 3
    nobody = _table((await admin_client.get("/staff/audit?actor=zed@&until=2021-03-10")).text)
    assert "HYPERLINK" not in nobody
    # 50 entries a page: the rest is one "older" link away.
    async with database.system() as session:
        for n in range(55):
            session.add(AuditEntry(occurred_at=T0 - timedelta(days=1, minutes=n), tenant_id=None, actor_type="cli",
                                   actor_label="cli:root", action="bulk.test", target_type="x", target_id=None,
                                   reason=f"entry {n}", detail={}))
    first = await admin_client.get("/staff/audit?action=bulk.")
    assert _table(first.text).count("<tr>") == 50 and 'rel="next"' in first.text
    older = first.text.split('rel="next"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = await admin_client.get(older)
    assert _table(second.text).count("<tr>") == 5 and 'rel="next"' not in second.text


async def test_bad_filters_are_named_never_a_500(admin_client):
    for query, field, status in (("since=2021-02-30", "since", 422), ("until=tomorrow", "until", 422),
                                 ("since=99999-01-01", "since", 422), ("since=2021-03-10&until=2021-03-01", "until", 422),
                                 ("actor=" + "x" * 300, "actor", 422), ("cursor=abc", "cursor", 400),
                                 ("company=" + "y" * 100, "company", 422)):
        answer = await admin_client.get(f"/staff/audit?{query}")
        assert answer.status_code == status and f'data-field="{field}"' in answer.text, (query, answer.status_code)
        if field == "cursor":
            continue  # the export takes the whole filter, no cursor
        export = await admin_client.get(f"/staff/audit/export.csv?{query}")
        assert export.status_code in (400, 422) and "text/csv" not in export.headers.get("content-type", ""), query
    assert (await admin_client.get("/staff/audit?actor=a%00b")).status_code == 400


async def test_the_csv_export_follows_the_filter_and_escapes_formulas(admin_client, operator_client, database):
    await _entries(database, admin_client.tenants)
    answer = await admin_client.get("/staff/audit/export.csv?since=2021-03-10&until=2021-03-10")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0][:2] == ["occurred_at", "tenant_id"] and len(rows) == 4
    reasons = {row[8] for row in rows[1:]}
    assert reasons == {"'=HYPERLINK(\"http://evil\")", "beta segredo", "provider-wide"}
    theirs = list(csv.reader(io.StringIO((await operator_client.get(
        "/staff/audit/export.csv?since=2021-03-10&until=2021-03-10")).text)))
    assert [row[8] for row in theirs[1:]] == ["'=HYPERLINK(\"http://evil\")"]
