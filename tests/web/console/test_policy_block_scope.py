"""The policy's block scope (issue 17: what a late charge blocks) is shown and saved where staff edit the
policy, refused by field when it is not one of the two, and another company's form stays out of reach."""

from __future__ import annotations

import re

from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.policies.templates import default_source
from tests.web.console.conftest import csrf_of

def _errors(html: str) -> list[str]:
    return re.findall(r'class="error"[^>]*>(.*?)</(?:small|div)>', html, re.S)


TITLE, BODY = default_source("dunning.notice", "pt-BR")  # the platform's wording: no override is saved
FORM = {"grace_days": "5", "reminder_offsets_days": "3, 1", "reminder_hour_local": "9", "auto_block": "on",
        "auto_unblock": "on", "terminate_after_days": "", "kind": "dunning.notice", "tlocale": "pt-BR",
        "title": TITLE, "body": BODY}


async def test_block_scope_is_edited_with_the_policy(database, operator_client):
    tenants = operator_client.tenants
    page_url = f"/staff/onboarding/{tenants.a.id}/policy"
    page = await operator_client.get(page_url)
    assert page.status_code == 200 and 'name="block_scope"' in page.text
    assert "O que uma cobrança em atraso bloqueia" in page.text and "Somente a assinatura" in page.text
    assert '<option value="contract" selected' in page.text  # the default

    refused = await operator_client.post_form(page_url, page_url, {**FORM, "block_scope": "everything"})
    assert refused.status_code == 422, refused.status_code
    assert 'id="e-block_scope"' in refused.text or "block_scope:" in refused.text, _errors(refused.text)
    assert "Input should" not in refused.text, _errors(refused.text)
    saved = await operator_client.post_form(page_url, page_url, {**FORM, "block_scope": "customer"})
    assert saved.status_code == 303, _errors(saved.text)
    async with database.provider(tenants.a.id) as session:
        _, config = await current_policy(session)
    assert config.block_scope == "customer"
    again = await operator_client.get(page_url)
    assert '<option value="customer" selected' in again.text

    foreign = f"/staff/onboarding/{tenants.b.id}/policy"  # the operator is not assigned to B
    assert (await operator_client.get(foreign)).status_code == 404
    token = csrf_of(page.text)
    posted = await operator_client.client.post(foreign, data={**FORM, "block_scope": "customer", "_csrf_token": token},
                                               headers=operator_client.headers, follow_redirects=False)
    assert posted.status_code == 404
    async with database.provider(tenants.b.id) as session:
        _, config = await current_policy(session)
    assert config.block_scope == "contract"
