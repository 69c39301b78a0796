"""The verdict: what the receivers must have seen (from the events sent and each tenant's setup), and
how what they saw, the database at the end, the intake's answers and the recovery times compare."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict

import asyncpg

from tests.faults.model import RECOVERY_TARGET_S, TENANTS, Figures, recovery_bound
from tests.faults.recorders import Received


class Verdict:
    """Mixed into :class:`tests.faults.scenario.Scenario`, whose state it reads."""

    def _all_received(self) -> list[Received]:
        return list(self.http.received) + list(self.smtp_handler.received)

    # --- what must be seen ----------------------------------------------------------------------------------

    async def expected(self) -> dict[str, set[tuple]]:
        """Every effect the receivers must have, by channel, from the events sent and each tenant's setup."""
        out: dict[str, set[tuple]] = {"webhook": set(), "platform": set(), "email": set()}
        timers = await self._timer_events()
        for planned in self.plan + self.extra:
            if not planned.acked:
                continue
            c, setup, conf = planned.customer, self.tenants[planned.tenant], TENANTS[planned.tenant]
            cid, eid = str(c.id), planned.event_id
            if conf["webhook_types"] is None or planned.type in conf["webhook_types"]:
                out["webhook"].add((c.tenant, "webhook", eid))
            if c.story in ("start_api", "start_asaas", "start"):
                out["platform"].add((c.tenant, "platform", cid, "provision", ""))
                if "customer.started" in conf["email_channels"]:
                    out["email"].add((c.tenant, "email", f"{eid}:start:notify:email:{setup.admin_id}"))
            elif c.story == "change":
                out["platform"].add((c.tenant, "platform", cid, "provision", "change"))
            elif c.story == "cancel":
                out["platform"].add((c.tenant, "platform", cid, "deprovision", ""))
            elif planned.type == "payment.overdue":
                out["email"].add((c.tenant, "email", f"{eid}:dunning:notice"))
            elif planned.role == "block-payment":
                out["platform"].add((c.tenant, "platform", cid, "unblock", ""))
        for (tenant, customer_id), event_id in timers.items():
            conf, setup = TENANTS[tenant], self.tenants[tenant]
            if conf["webhook_types"] is None or "dunning.deadline_reached" in conf["webhook_types"]:
                out["webhook"].add((tenant, "webhook", event_id))
            out["platform"].add((tenant, "platform", customer_id, "block", ""))
            out["email"].add((tenant, "email", f"{event_id}:dunning:blocked_notice"))
            if "dunning.blocked" in conf["email_channels"]:
                out["email"].add((tenant, "email", f"{event_id}:dunning:blocked:email:{setup.admin_id}"))
        return out

    async def _timer_events(self) -> dict[tuple[str, str], str]:
        """The grace deadlines that fired: one event per block story's customer (its id names the effects)."""
        by_id = {s.id: slug for slug, s in self.tenants.items()}
        connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=10)
        try:
            rows = await connection.fetch(
                "SELECT tenant_id, customer_id, id FROM events WHERE source = 'timer' AND type = 'dunning.deadline_reached'")
        finally:
            await connection.close()
        found: dict[tuple[str, str], str] = {}
        for row in rows:
            key = (by_id[row["tenant_id"]], str(row["customer_id"]))
            if key in found:
                self.problems.append(f"two deadline events for customer {key}")
            found[key] = str(row["id"])
        return found

    # --- the verdict --------------------------------------------------------------------------------------

    async def verdict(self) -> tuple[list[str], Figures]:
        failures = list(self.problems)
        figures = Figures()
        sent = self.plan + self.extra
        acked = [p for p in sent if p.acked]
        unacked = [p for p in sent if not p.acked]
        figures.values["events sent (distinct)"] = len(sent)
        figures.values["events acknowledged (2xx)"] = len(acked)
        figures.values["requests made"] = sum(p.attempts for p in sent)
        if unacked:
            failures.append(f"{len(unacked)} events were never acknowledged; first: "
                            + "; ".join(f"{p.type} {p.body.get('external_id') or p.body.get('id')} statuses "
                                        f"{p.statuses[-5:]} refused={p.refused}" for p in unacked[:5]))

        connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=10)
        try:
            stored = {str(r["id"]): r["status"] for r in await connection.fetch(
                "SELECT id, status FROM events WHERE id = ANY($1::uuid[])", [uuid.UUID(p.event_id) for p in acked])}
            all_events = Counter({r["status"]: r["n"] for r in await connection.fetch(
                "SELECT status, count(*) AS n FROM events GROUP BY status")})
            stuck = await connection.fetch(
                "SELECT job, attempts, lease_until, available_at, last_error FROM outbox WHERE completed_at IS NULL "
                "ORDER BY available_at LIMIT 10")
            stuck_count = await connection.fetchval("SELECT count(*) FROM outbox WHERE completed_at IS NULL")
            messages = Counter({(r["channel"], r["status"]): r["n"] for r in await connection.fetch(
                "SELECT channel, status, count(*) AS n FROM outbound_messages GROUP BY channel, status")})
            bad_messages = await connection.fetch(
                "SELECT channel, status, attempts, last_error FROM outbound_messages WHERE status <> 'sent' LIMIT 10")
            handovers = await connection.fetchrow(
                "SELECT count(*) AS rows, coalesce(sum(attempts), 0) AS total, coalesce(max(attempts), 0) AS most, "
                "count(*) FILTER (WHERE attempts > 1) AS again FROM outbox")
            deliveries = Counter({r["status"]: r["n"] for r in await connection.fetch(
                "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status")})
            await self._recovery(connection)
        finally:
            await connection.close()

        missing_rows = [p for p in acked if p.event_id not in stored]
        unprocessed = [p for p in acked if stored.get(p.event_id) not in (None, "processed")]
        figures.values["acknowledged events stored / processed"] = (
            f"{len(acked) - len(missing_rows)} / {len(acked) - len(missing_rows) - len(unprocessed)}")
        if missing_rows:
            failures.append(f"{len(missing_rows)} acknowledged events are not stored: "
                            f"{[p.body.get('external_id') or p.body.get('id') for p in missing_rows[:5]]}")
        if unprocessed:
            failures.append(f"{len(unprocessed)} acknowledged events are stored but not processed: "
                            f"{[(p.type, stored[p.event_id]) for p in unprocessed[:5]]}")
        if set(all_events) - {"processed"}:
            failures.append(f"events not processed at the end, by status: {dict(all_events)}")
        if stuck_count:
            failures.append(f"{stuck_count} outbox rows not completed at the end (stuck), first: "
                            + "; ".join(f"{r['job']} attempts={r['attempts']} lease_until={r['lease_until']} "
                                        f"available_at={r['available_at']} error={r['last_error']}" for r in stuck))
        if bad_messages:
            failures.append(f"outbound messages not sent at the end: {dict(messages)}; first: "
                            + "; ".join(f"{r['channel']} {r['status']} attempts={r['attempts']} {r['last_error']}"
                                        for r in bad_messages))
        if set(deliveries) - {"succeeded"}:
            failures.append(f"webhook deliveries not succeeded at the end: {dict(deliveries)}")
        figures.values["outbox rows left"] = stuck_count
        figures.values["outbox hand-overs: rows / in all / rows handed over again / most for one row"] = (
            f"{handovers['rows']} / {handovers['total']} / {handovers['again']} / {handovers['most']}")

        expected = await self.expected()
        received = self._all_received()
        by_logical: dict[tuple, list[Received]] = defaultdict(list)
        for item in received:
            by_logical[item.logical].append(item)
        for channel in ("platform", "webhook", "email"):
            want = expected[channel]
            got = {r.logical for r in received if r.channel == channel}
            missing, unexpected = want - got, got - want
            figures.values[f"{channel}: expected / received (distinct) / deliveries"] = (
                f"{len(want)} / {len(got & want)} / {sum(r.channel == channel for r in received)}")
            if missing:
                failures.append(f"{len(missing)} expected {channel} effects never reached the receiver, e.g. "
                                f"{sorted(missing, key=str)[:5]}")
            if unexpected:
                failures.append(f"{len(unexpected)} {channel} effects reached the receiver that no event asked for, "
                                f"e.g. {sorted(unexpected, key=str)[:5]}")
        same_id = different_id = 0
        examples = []
        for logical, items in by_logical.items():
            if len(items) < 2:
                continue
            identities = {i.identity for i in items}
            same_id += len(items) - len(identities)
            different_id += len(identities) - 1
            if len(identities) > 1:
                examples.append(f"{logical} x{len(items)} with identities {sorted(identities)}")
        figures.values["repeats at receivers, same identity"] = same_id
        figures.values["repeats at receivers, different identity"] = different_id
        if different_id:
            failures.append(f"{different_id} repeats reached a receiver with a fresh identity (the receiver cannot "
                            f"drop them): {examples[:5]}")
        folded = [r for r in self.smtp_handler.received if r.detail["folded"]]
        figures.values["e-mails with a folded X-Backoffice-Effect"] = len(folded)
        if folded:
            failures.append(f"{len(folded)} e-mails arrived with X-Backoffice-Effect folded, e.g. "
                            f"{[r.detail['effect_raw'] for r in folded[:2]]}")
        if self.http.refused:
            failures.append(f"{len(self.http.refused)} requests failed the receivers' signature check: "
                            f"{self.http.refused[:3]}")

        five = {s: n for s, n in sorted(self.statuses.items()) if s >= 500}
        figures.values["intake answers by status"] = dict(sorted(self.statuses.items()))
        figures.values["intake 5xx by status"] = five or "none"
        figures.values["intake 5xx without Retry-After"] = dict(self.no_retry_after) or "none"
        figures.values["intake connection errors (web down)"] = self.connection_errors
        bad5xx = {s: n for s, n in five.items() if s != 503}
        unhandled = self._unhandled_errors()
        figures.values["web: unhandled errors logged (route: exception)"] = unhandled[:5] or "none"
        if bad5xx:
            failures.append(f"the intake answered {bad5xx} during outages: an unavailable dependency must be "
                            f"503 with Retry-After; the web log's unhandled errors: {unhandled[:5]}")
        if self.no_retry_after:
            failures.append(f"5xx answers without Retry-After: {dict(self.no_retry_after)}")

        rounds: Counter = Counter()
        for fault in self.faults:
            rounds[fault.kind] += 1
            label = f"recovery after {fault.kind}" + (f" (round {rounds[fault.kind]})" if self.fault_rounds > 1 else "")
            if fault.kind == "web":
                continue
            if fault.recovery_s is None:
                figures.values[label] = f"nothing in flight ({fault.detail})"
                continue
            over = fault.recovery_s > RECOVERY_TARGET_S
            figures.values[label] = (f"{fault.recovery_s:.1f} s for {len(fault.inflight)} rows in flight"
                                     + (f" (OVER the {RECOVERY_TARGET_S:.0f} s target)" if over else "")
                                     + (f", {fault.unrecovered} never completed" if fault.unrecovered else "")
                                     + f" ({fault.detail})")
            bound = recovery_bound(fault.kind)
            if fault.unrecovered or fault.recovery_s > bound:
                failures.append(f"{fault.kind} fault: the work in flight took {fault.recovery_s:.1f} s to complete "
                                f"({fault.unrecovered} of {len(fault.inflight)} rows never did); bound "
                                f"{bound:.0f} s (target {RECOVERY_TARGET_S:.0f} s)")
        worst = max((f.recovery_s for f in self.faults if f.recovery_s is not None), default=0.0)
        figures.values["worst recovery (s)"] = round(worst, 1)
        if any(f.kind == "web" and f.at is not None for f in self.faults):
            back = max(self.web_recovery, default=None)
            figures.values["intake back after web kill (s)"] = round(back, 1) if back is not None else "never"
            if back is None or back > RECOVERY_TARGET_S:
                failures.append(f"after the web kill the intake acknowledged nothing for "
                                f"{'the rest of the run' if back is None else f'{back:.1f} s'}; target "
                                f"{RECOVERY_TARGET_S:.0f} s")
        supervisor = self.cluster.supervisor
        figures.values["restarts by the supervisor"] = {n: s.restarts for n, s in supervisor.services.items()}
        return failures, figures

    async def _recovery(self, connection) -> None:
        """For each fault: from its moment until every row in flight then completed, and every message such a
        row was delivering was sent."""
        for fault in self.faults:
            if not fault.inflight:
                continue
            ids = [r["id"] for r in fault.inflight]
            rows = {r["id"]: r for r in await connection.fetch(
                "SELECT id, completed_at, dispatched_at, attempts FROM outbox WHERE id = ANY($1::uuid[])", ids)}
            done = {i: r["completed_at"] for i, r in rows.items()}
            message_ids = [uuid.UUID(r["payload"]["message_id"]) for r in fault.inflight
                           if r["job"] == "effects.deliver" and r["payload"].get("message_id")]
            sent = {r["id"]: r["sent_at"] for r in await connection.fetch(
                "SELECT id, sent_at FROM outbound_messages WHERE id = ANY($1::uuid[])", message_ids)}
            times, unrecovered = [], 0
            for row in fault.inflight:
                completed = done.get(row["id"])
                if completed is None:
                    unrecovered += 1
                    continue
                moments = [completed]
                if row["job"] == "effects.deliver" and row["payload"].get("message_id"):
                    at = sent.get(uuid.UUID(row["payload"]["message_id"]))
                    if at is None:
                        unrecovered += 1
                        continue
                    moments.append(at)
                times.append(((max(moments) - fault.db_at).total_seconds(), row))
            fault.unrecovered = unrecovered
            fault.recovery_s = max((t for t, _ in times), default=0.0)
            if times:  # where the slowest row's time went: waiting to be handed over again, or in the queue after
                seconds, row = max(times, key=lambda item: item[0])
                again = rows[row["id"]]["dispatched_at"]
                handed = (f"handed over again after {(again - fault.db_at).total_seconds():.1f} s"
                          if again and again > fault.db_at else "not handed over again")
                fault.detail += (f"; slowest {row['job']} done after {seconds:.1f} s, {handed}, "
                                 f"{rows[row['id']]['attempts']} hand-overs in all")

    def _unhandled_errors(self) -> list[str]:
        """What the web process logged for each bare 500 (``web/errors.py`` logs "unhandled error on <method>
        <path>" with the traceback): the route and the exception's last line, so a 500 names its cause."""
        found = []
        for path in sorted(self.cluster.logs.glob("web*.log")):
            lines = path.read_text(errors="replace").splitlines()
            for n, line in enumerate(lines):
                if "unhandled error on" not in line:
                    continue
                route = line.split("unhandled error on", 1)[1].split('"', 1)[0].strip()
                cause = ""
                try:  # JSON logs: the traceback is a field of the same line
                    record = json.loads(line)
                    trace = str(record.get("exception") or record.get("exc_info") or "")
                    cause = [t for t in trace.splitlines() if t.strip()][-1] if trace.strip() else ""
                except (ValueError, AttributeError):
                    for following in lines[n + 1:n + 200]:  # text logs: the traceback follows
                        if following and not following.startswith((" ", "Traceback", "During", "The above")):
                            cause = following
                            break
                found.append(f"{route}: {cause[:300]}")
        return found

    def state(self) -> str:
        """The recorders' state, for a failure message."""
        by_channel = Counter(r.channel for r in self._all_received())
        lines = [f"recorders: {dict(by_channel)}; signature refusals {len(self.http.refused)}",
                 "faults: " + "; ".join(f"{f.kind}@{f.planned_at:.1f}s {f.detail}" for f in self.faults),
                 f"supervisor: {self.cluster.supervisor.events if self.cluster.supervisor else []}"]
        recent = self._all_received()[-5:]
        lines += [f"  last: {r.channel} {r.tenant} {r.identity} {r.logical}" for r in recent]
        return "\n".join(lines)
