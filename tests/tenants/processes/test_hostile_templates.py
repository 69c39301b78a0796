"""A tenant template saved before the sandbox bounded its cost: the worker neither hangs nor drops the message."""

from __future__ import annotations

import time

from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.timeline.models import TimelineEntry

from tests.tenants.processes.conftest import new_customer
from tests.tenants.processes.test_scenarios import cleared, rows

HOSTILE = {"title": "{{ (((9**99)**99)**99)**99 % 7 }}", "body": "{{ customer.name }}"}


async def test_a_stored_hostile_template_is_refused_in_the_worker_and_the_case_says_why(spine):
    a, b = spine.tenants.a, spine.tenants.b
    config = PolicyConfig().model_dump(mode="json")
    config["templates"] = {"customer.started": {"pt-BR": HOSTILE, "en": HOSTILE}}
    async with spine.database.tenant(a.id) as session:  # written as it was, past today's validation
        session.add(PolicyVersion(version=1, config=config, created_by="before the sandbox rules", reason=None))
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Padaria Estrela Ltda",
                                     tax_id="11.222.333/0001-81")
    started = time.monotonic()
    await spine.ingest(a.id, cleared("evt_1", {"id": str(customer_id)}))
    await spine.settle()
    assert time.monotonic() - started < 20  # before: minutes of one worker thread inside one `**`

    [note] = await rows(spine, a.id, Notification)  # delivered, in the default wording
    assert note.kind == "customer.started" and "Padaria Estrela Ltda" in note.title
    timeline = await rows(spine, a.id, TimelineEntry, TimelineEntry.customer_id == customer_id)
    [failed] = [entry for entry in timeline if "template failed" in entry.title]
    assert "exponent too large" in failed.reason
    assert failed.message["title"] == {  # the title in each reader's language; the sandbox's words as they are
        "id": "The company's {kind} ({locale}) template failed, the default wording was used",
        "params": {"kind": "customer.started", "locale": "pt-BR"}}
    assert await rows(spine, b.id, Notification) == []
