"""The fault suite: the production shape as real processes, faults injected under load, judged from outside.

``backoffice migrate``, ``web``, two ``worker --processes 1`` and two ``scheduler`` processes run against a
PostgreSQL cluster and a Redis this test starts on free ports (``cluster.py``); recorders stand in for the
tenants' platforms, webhook endpoints, SMTP server and Asaas (``recorders.py``). About 1,100 events of
eight kinds across two tenants go in through the API and Asaas-shaped webhooks while web, a worker
process and the leading scheduler are killed with SIGKILL, Redis is killed and restarted empty and
PostgreSQL restarts with ``-m immediate`` (``scenario.py`` has the stories and what each must produce).

It then asserts, from what the receivers saw: every acknowledged event stored and processed; every
expected platform command, webhook and e-mail present and nothing else; a repeat only with the identity
of the first (webhook-id, Message-ID); no outbox row left, no delivery dead; the work in flight at a
worker kill done within the 60 s target (and at the other faults within 120 s, see model.py); the intake
answering 503 with Retry-After during outages, never a bare 500.
The figures are printed whether it passes or not.

Run it alone: ``CI=true .venv/bin/python -m pytest -q -s tests/faults`` (two to three minutes on the
2-core development machine while it was shared with other work, load average 7-11; less alone).
A larger soak (10,000 events): ``.venv/bin/python -m tests.perf.soak_faults``.
"""

from __future__ import annotations

import os

import pytest

from tests import services
from tests.faults.cluster import missing_tools
from tests.faults.scenario import run_scenario

pytestmark = pytest.mark.faults

# CI size: ~1,100 events at 15/s (75 s of load, one round of the five faults), then up to
# 150 s for everything in flight to reach the receivers.
SEED = int(os.environ.get("BACKOFFICE_FAULTS_SEED", "18"))


def test_nothing_lost_and_nothing_repeated_under_faults():
    problem = missing_tools()
    if problem:
        if services.in_ci():
            pytest.fail(f"{problem} (CI=true: the fault suite must run)", pytrace=False)
        pytest.skip(problem)
    failures, figures, _ = run_scenario(scale=1.0, rate=15.0, seed=SEED, fault_rounds=1, drain_timeout=150.0)
    report = f"fault suite figures (seed {SEED}):\n{figures.text()}"
    print("\n" + report)
    assert not failures, "\n".join(["", *failures, "", report])
