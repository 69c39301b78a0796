"""``backoffice``: run the platform's processes and manage tenants, staff and users.

Every management command is an audited action (actor ``cli:<os user>``); errors name the field.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from backoffice.platform import clock as platform_clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database, get_owned
from backoffice.platform.documents import format_cnpj
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.platform.security.secrets import count_secret_rows, new_key, rotate_all
from backoffice.platform.settings import Settings, settings_or_exit
from backoffice.platform.timers.clock import ClockShiftRefused, advance_clock, reset_clock
from backoffice.tenants.apikeys.service import create_api_key, list_api_keys, revoke_api_key
from backoffice.tenants.deadletters import queries as deadletter_queries
from backoffice.tenants.deadletters import service as deadletter_service
from backoffice.tenants.registry.export import count_rows, export_tenant, import_tenant, purge_tenant, tenant_tables
from backoffice.tenants.registry.service import (
    create_tenant,
    get_tenant_by_slug,
    list_tenants,
    reactivate_tenant,
    suspend_tenant,
)
from backoffice.tenants.registry.settings import (
    change_settings,
    remove_custom_host,
    request_custom_host,
    verification_record,
    verify_custom_host,
)
from backoffice.tenants.routines.catalogue import get_routine
from backoffice.tenants.routines.engine import pause, resume, retry_failed, run_view, start_run
from backoffice.tenants.routines.handover import OPEN_WORK
from backoffice.tenants.routines.models import FINISHED_STATUSES, ItemStatus, RoutineRun, RunStatus
from backoffice.tenants.routines.queries import routine_statuses, run_detail, runs_query
from backoffice.tenants.staff.queries import staff_and_their_tenants
from backoffice.tenants.staff.service import assign_staff, create_staff, get_staff_by_email, hand_over, unassign_staff
from backoffice.tenants.users.service import create_tenant_user, list_tenant_users
from backoffice.web.entry.runtime import run_embedded, run_scheduler, run_web, run_worker
from backoffice.web.entry.wiring import SECRET_COLUMNS, compose


def _settings() -> Settings:
    return settings_or_exit()


def _run_db(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Run an async command with a Database; field errors become a clear message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:

        async def main() -> Any:
            database = Database(_settings())
            try:
                return await fn(database, *args, **kwargs)
            finally:
                await database.dispose()

        try:
            return asyncio.run(main())
        except ValidationFailed as error:
            for item in error.errors:
                click.echo(f"error: {item.field}: {item.message}", err=True)
            sys.exit(2)
        except LookupError as error:
            click.echo(f"error: not found: {error}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
def main() -> None:
    """The back-office platform."""
    compose()


# --- processes ------------------------------------------------------------------------------------

@main.command()
@click.option("--no-seed", is_flag=True, help="Do not create the demo tenants.")
def demo(no_seed: bool) -> None:
    """Embedded mode: migrate, seed two demo tenants and run everything in this process."""

    run_embedded(_settings(), seed=not no_seed)


@main.command()
def migrate() -> None:
    """Apply the Alembic migrations (as the schema owner)."""

    upgrade(_settings())
    click.echo("database is at the latest migration")


@main.command()
def web() -> None:
    """Run the web server (API, webhooks, portal)."""

    run_web(_settings())


@main.command()
@click.option("--processes", default=os.cpu_count() or 1, show_default="one per CPU",
              help="Worker processes (each runs its async jobs on one event loop, so one per core).")
def worker(processes: int) -> None:
    """Run dramatiq workers for every job (threads per process: BACKOFFICE_WORKER_THREADS)."""

    run_worker(_settings(), processes)


@main.command()
def scheduler() -> None:
    """Run the scheduler (relay and durable timers); standbys wait for the leader's lock."""

    run_scheduler(_settings())


# --- tenants --------------------------------------------------------------------------------------

@main.group()
def tenants() -> None:
    """Client companies."""


@tenants.command("create")
@click.option("--slug", required=True)
@click.option("--name", "display_name", required=True, help="Display name on the portal.")
@click.option("--legal-name", required=True)
@click.option("--cnpj", required=True)
@click.option("--timezone", default="America/Sao_Paulo", show_default=True)
@click.option("--locale", default="pt-BR", show_default=True)
@click.option("--primary-colour", default=None, help="#rrggbb")
@_run_db
async def tenants_create(database, slug, display_name, legal_name, cnpj, timezone, locale, primary_colour) -> None:
    """Create a client company (CNPJ validated; the slug names it in every other command)."""

    branding = {"primary": primary_colour} if primary_colour else None
    async with database.system() as session:
        tenant = await create_tenant(session, slug=slug, display_name=display_name, legal_name=legal_name,
                                     cnpj=cnpj, timezone=timezone, locale=locale, branding=branding,
                                     acting=Actor.cli())
    click.echo(f"created tenant {tenant.slug} ({tenant.id})")


@tenants.command("list")
@_run_db
async def tenants_list(database) -> None:
    """Every client company: slug, status, CNPJ and name."""

    async with database.system() as session:
        rows = await list_tenants(session)
    click.echo(f"{'SLUG':<20} {'STATUS':<10} {'CNPJ':<20} NAME")
    for tenant in rows:
        click.echo(f"{tenant.slug:<20} {tenant.status.value:<10} {format_cnpj(tenant.cnpj):<20} {tenant.display_name}")


@tenants.command("suspend")
@click.argument("slug")
@click.option("--reason", required=True, help="Why; kept in the audit log and shown to nobody else.")
@_run_db
async def tenants_suspend(database, slug, reason) -> None:
    """Suspend a company: its portal and API refuse, its data is kept."""

    async with database.system() as session:
        tenant = await suspend_tenant(session, await get_tenant_by_slug(session, slug), reason=reason,
                                      acting=Actor.cli())
    click.echo(f"suspended {tenant.slug}; its portal and API now refuse, its data is kept")


@tenants.command("reactivate")
@click.argument("slug")
@click.option("--reason", default=None)
@_run_db
async def tenants_reactivate(database, slug, reason) -> None:
    """Give a suspended company its access back."""

    async with database.system() as session:
        tenant = await reactivate_tenant(session, await get_tenant_by_slug(session, slug), reason=reason,
                                         acting=Actor.cli())
    click.echo(f"reactivated {tenant.slug}")


@tenants.command("set")
@click.argument("slug")
@click.option("--timezone", default=None, help="An IANA time zone, e.g. America/Sao_Paulo.")
@click.option("--locale", default=None, type=click.Choice(["pt-BR", "en"]))
@click.option("--key-max-days", default=None, help="Longest API key lifetime in days; 'none' for no maximum.")
@click.option("--rate-limit", default=None, help="Most requests a minute an API key may get; 'none' for the default.")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@_run_db
async def tenants_set(database, slug, timezone, locale, key_max_days, rate_limit, reason) -> None:
    """Change a company's settings (each change audited with its value before and after)."""

    given = {"timezone": timezone, "locale": locale, "api_key_max_days": key_max_days,
             "api_rate_limit_per_minute": rate_limit}
    changes = {key: (None if value == "none" else value) for key, value in given.items() if value is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
        tenant = await change_settings(session, tenant.id, changes, acting=Actor.cli(), reason=reason)
    click.echo(f"{tenant.slug}: time zone {tenant.timezone}, locale {tenant.locale}, key lifetime "
               f"{tenant.api_key_max_days or 'no maximum'}, key rate {tenant.api_rate_limit_per_minute or 'default'}")


@tenants.command("host")
@click.argument("slug")
@click.argument("host")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@_run_db
async def tenants_host(database, slug, host, reason) -> None:
    """Ask for a custom host: prints the DNS TXT record the client publishes before `verify-host`."""

    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
        tenant = await request_custom_host(session, tenant.id, host, settings=database.settings, acting=Actor.cli(),
                                           reason=reason)
    proof = verification_record(tenant)
    if proof is None:
        click.echo(f"{tenant.slug} is served on {tenant.custom_host} already")
        return
    click.echo(f"publish this DNS record, then run: backoffice tenants verify-host {tenant.slug}")
    click.echo(f"{proof['name']} TXT \"{proof['value']}\"")


@tenants.command("verify-host")
@click.argument("slug")
@_run_db
async def tenants_verify_host(database, slug) -> None:
    """Look the TXT record up; once it holds the token, the portal is served on the host."""

    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
        tenant = await verify_custom_host(session, tenant.id, settings=database.settings, acting=Actor.cli())
    click.echo(f"verified: {tenant.slug}'s portal is served on {tenant.custom_host}")


@tenants.command("remove-host")
@click.argument("slug")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@_run_db
async def tenants_remove_host(database, slug, reason) -> None:
    """Stop serving the portal on its custom host (the path address remains)."""

    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
        await remove_custom_host(session, tenant.id, acting=Actor.cli(), reason=reason)
    click.echo(f"{tenant.slug} has no custom host")


@tenants.command("export")
@click.argument("slug")
@click.option("--output", "output", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write; default: standard output.")
@_run_db
async def tenants_export(database, slug, output) -> None:
    """Every row of one tenant as JSON lines (secrets stay encrypted at rest)."""

    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
        total = sum((await count_rows(session, tenant.id, await tenant_tables(session))).values())
        with click.progressbar(length=total, label=f"Exporting {tenant.slug}", file=sys.stderr) as bar:
            written = await export_tenant(session, tenant, output, progress=bar.update)
    click.echo(f"exported {sum(written.values())} rows of {tenant.slug} from {len(written)} tables", err=True)


@tenants.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_run_db
async def tenants_import(database, file) -> None:
    """Load a tenant export into this database (which must not hold that tenant yet)."""

    with open(file, encoding="utf-8") as source:
        lines = sum(1 for line in source if line.strip())
    with open(file, encoding="utf-8") as source, \
            click.progressbar(length=lines, label="Importing", file=sys.stderr) as bar:
        async with database.system() as session:
            tenant = await import_tenant(session, source, acting=Actor.cli(), progress=bar.update)
    click.echo(f"imported {tenant.slug} ({tenant.id}): {lines} rows")


@tenants.command("purge")
@click.argument("slug")
@click.option("--reason", required=True, help="Why (e.g. the LGPD request); kept in the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_run_db
async def tenants_purge(database, slug, reason, yes) -> None:
    """Delete every row of a tenant suspended for BACKOFFICE_TENANT_PURGE_GRACE_DAYS (its audit entries stay)."""


    if not yes:
        click.confirm(f"Delete every row of {slug}? This cannot be undone", abort=True)
    grace = timedelta(days=_settings().tenant_purge_grace_days)
    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
        tables = len(await tenant_tables(session))
        with click.progressbar(length=tables, label=f"Purging {slug}", file=sys.stderr) as bar:
            deleted = await purge_tenant(session, tenant, grace=grace, reason=reason, acting=Actor.cli(),
                                         progress=bar.update)
    click.echo(f"purged {slug}: {sum(deleted.values())} rows deleted; its audit entries are kept")


# --- staff ----------------------------------------------------------------------------------------

@main.group()
def staff() -> None:
    """The provider's staff and their assignments."""


@staff.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["provider_admin", "provider_operator"]), default="provider_operator",
              show_default=True)
@click.password_option(envvar="BACKOFFICE_NEW_PASSWORD", help="Or BACKOFFICE_NEW_PASSWORD.")
@_run_db
async def staff_create(database, email, name, role, password) -> None:
    """Create a staff member of the provider (they enrol their second factor at first sign-in)."""

    async with database.system() as session:
        member = await create_staff(session, email=email, name=name, role=role, password=password,
                                    acting=Actor.cli())
    click.echo(f"created {member.role.value} {member.email}")


@staff.command("assign")
@click.argument("email")
@click.argument("slug")
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@_run_db
async def staff_assign(database, email, slug, reason) -> None:
    """Mobilise a staff member on a tenant."""

    async with database.system() as session:
        member = await get_staff_by_email(session, email)
        tenant = await get_tenant_by_slug(session, slug)
        await assign_staff(session, staff=member, tenant=tenant, acting=Actor.cli(), reason=reason)
    click.echo(f"{member.email} now serves {tenant.slug}")


@staff.command("unassign")
@click.argument("email")
@click.argument("slug")
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@click.option("--hand-over-to", default=None, help="E-mail of someone serving the tenant who takes the open work.")
@_run_db
async def staff_unassign(database, email, slug, reason, hand_over_to) -> None:
    """Demobilise a staff member from a tenant (optionally handing their open routine work over first)."""

    async with database.system() as session:
        member = await get_staff_by_email(session, email)
        tenant = await get_tenant_by_slug(session, slug)
        receiver = await get_staff_by_email(session, hand_over_to) if hand_over_to else None
        await unassign_staff(session, staff=member, tenant=tenant, acting=Actor.cli(), reason=reason,
                             hand_over_to=receiver, work=OPEN_WORK)
    click.echo(f"{member.email} no longer serves {tenant.slug}")


@staff.command("handover")
@click.argument("email")
@click.argument("slug")
@click.option("--to", "to_email", required=True, help="E-mail of someone serving the tenant.")
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@_run_db
async def staff_handover(database, email, slug, to_email, reason) -> None:
    """Hand a staff member's open routine work on a tenant (the runs they follow up) to someone else."""

    async with database.system() as session:
        member = await get_staff_by_email(session, email)
        receiver = await get_staff_by_email(session, to_email)
        tenant = await get_tenant_by_slug(session, slug)
        moved = await hand_over(session, tenant=tenant, from_staff=member, to_staff=receiver, acting=Actor.cli(),
                                reason=reason, work=OPEN_WORK)
    counts = ", ".join(f"{len(ids)} {kind}" for kind, ids in moved.items())
    click.echo(f"{member.email} handed {counts} on {tenant.slug} to {receiver.email}")


@staff.command("list")
@_run_db
async def staff_list(database) -> None:
    """Every staff member, their role and the companies they serve."""
    async with database.system() as session:
        members = await staff_and_their_tenants(session)
    for member, slugs in members:
        tenants_text = "all tenants" if member.role.value == "provider_admin" else ", ".join(slugs) or "-"
        click.echo(f"{member.email:<32} {member.role.value:<18} {tenants_text}")


# --- tenant users ---------------------------------------------------------------------------------

@main.group()
def users() -> None:
    """Front-office users of a tenant."""


@users.command("create")
@click.argument("slug")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["tenant_admin", "tenant_member"]), default="tenant_member",
              show_default=True)
@click.option("--sso-only", is_flag=True, help="No password: the user logs in through the company's SSO.")
@click.option("--password", envvar="BACKOFFICE_NEW_PASSWORD", default=None, help="Or BACKOFFICE_NEW_PASSWORD; prompted when absent.")
@_run_db
async def users_create(database, slug, email, name, role, sso_only, password) -> None:
    """Create a front-office user of a company."""

    if not sso_only and password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.provider(tenant.id) as session:
        user = await create_tenant_user(session, email=email, name=name, role=role,
                                        password=None if sso_only else password, acting=Actor.cli())
    click.echo(f"created {user.role.value} {user.email} in {tenant.slug}")


@users.command("list")
@click.argument("slug", metavar="TENANT")
@_run_db
async def users_list(database, slug) -> None:
    """A company's front-office users: e-mail, role, how they sign in, active or not."""

    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.provider(tenant.id) as session:
        rows = await list_tenant_users(session)
    click.echo(f"{'E-MAIL':<36} {'ROLE':<14} {'SIGN-IN':<9} {'STATE':<9} NAME")
    for user in rows:
        sign_in = "password" if user.password_hash else "sso"
        state = "active" if user.active else "inactive"
        click.echo(f"{user.email:<36} {user.role.value:<14} {sign_in:<9} {state:<9} {user.name}")



# --- API keys -------------------------------------------------------------------------------------

@main.group()
def keys() -> None:
    """API keys of a tenant's systems."""


@keys.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="What uses the key (e.g. 'ERP integration').")
@click.option("--scope", "scopes", multiple=True, required=True, help="resource:read|write; repeat for more.")
@click.option("--expires-days", type=int, default=None, help="Lifetime in days; capped by the tenant's maximum.")
@_run_db
async def keys_create(database, slug, name, scopes, expires_days) -> None:
    """Create an API key for a company's systems (the secret is printed once)."""

    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.provider(tenant.id) as session:
        new = await create_api_key(session, name=name, scopes=list(scopes), expires_days=expires_days,
                                   acting=Actor.cli())
    click.echo(f"created key {new.key.display_prefix}... ({new.key.id}) for {tenant.slug}; it is shown only once:",
               err=True)
    click.echo(new.secret)


@keys.command("list")
@click.argument("slug", metavar="TENANT")
@_run_db
async def keys_list(database, slug) -> None:
    """A company's API keys: id, prefix, name, scopes, expiry, last use and state (never the secret)."""

    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.provider(tenant.id) as session:
        rows = await list_api_keys(session)
    now = platform_clock.now()
    click.echo(f"{'ID':<36} {'PREFIX':<16} {'STATE':<8} {'EXPIRES':<10} {'LAST USED':<16} NAME / SCOPES")
    for key in rows:
        state = ("revoked" if key.revoked_at else "expired" if key.expires_at and key.expires_at <= now
                 else "active")
        expires = key.expires_at.date().isoformat() if key.expires_at else "never"
        used = key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "-"
        click.echo(f"{key.id!s:<36} {key.display_prefix:<16} {state:<8} {expires:<10} {used:<16} "
                   f"{key.name} / {', '.join(key.scopes)}")


@keys.command("revoke")
@click.argument("slug", metavar="TENANT")
@click.argument("key_id", type=click.UUID)
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@_run_db
async def keys_revoke(database, slug, key_id, reason) -> None:
    """Revoke a company's API key at once (its next request is refused)."""

    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.provider(tenant.id) as session:
        key = await revoke_api_key(session, key_id, acting=Actor.cli(), reason=reason)
    click.echo(f"revoked {key.display_prefix}... ({key.id}) of {tenant.slug}")


# --- routines -------------------------------------------------------------------------------------

@main.group()
def routines() -> None:
    """A tenant's back-office routines: their status and runs; start, retry, pause and resume them."""


TENANT_ARGUMENT = click.argument("slug", metavar="TENANT")  # every command names its tenant first, by slug
FOLLOW_OPTION = click.option("--follow/--no-follow", default=None,
                             help="Show the progress until the run finishes (default: when stdout is a terminal).")
INTERVAL_OPTION = click.option("--interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
                               help="Seconds between looks at the run while following.")
FAILED_SHOWN = 50


async def _tenant_named(database, slug: str):

    async with database.anonymous() as session:
        return await get_tenant_by_slug(session, slug)


def _local(moment, timezone: str) -> str:

    if moment is None:
        return "-"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _counts(run: dict) -> str:
    return f"{run['items_done']:,} done, {run['items_failed']:,} failed of {run['items_total']:,}"


@routines.command("list")
@TENANT_ARGUMENT
@_run_db
async def routines_list(database, slug) -> None:
    """Each routine's schedule, state, last and next run."""

    tenant = await _tenant_named(database, slug)
    async with database.provider(tenant.id) as session:
        statuses = await routine_statuses(session, locale="en")
    click.echo(f"{'ROUTINE':<22} {'STATE':<7} {'SCHEDULE':<28} {'NEXT RUN':<17} LAST RUN")
    for status in statuses:
        last = status["last_run"]
        last_text = f"{last['period']} {last['status']} ({_counts(last)})" if last else "-"
        state = "paused" if status["paused"] else "active" if status["configured"] else "no-conn"
        click.echo(f"{status['routine']:<22} {state:<7} "
                   f"{status['schedule']:<28} {_local(status['next_run_at'], tenant.timezone):<17} {last_text}")
        if not status["configured"]:
            click.echo(f"  not scheduled: no enabled connector of kind {' or '.join(status['requires'])}")
        if status["paused"]:
            click.echo(f"  paused by {status['paused_by']} at {_local(status['paused_at'], tenant.timezone)}"
                       + (f": {status['pause_reason']}" if status["pause_reason"] else ""))
    click.echo(f"(times in {tenant.timezone})")


@routines.command("runs")
@TENANT_ARGUMENT
@click.option("--routine", default=None, help="Only this routine's runs.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["queued", "running", "paused", "succeeded", "partial", "failed"]),
              help="Only runs in this status; repeat for more.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@_run_db
async def routines_runs(database, slug, routine, statuses, limit) -> None:
    """The tenant's runs, newest first."""

    tenant = await _tenant_named(database, slug)
    async with database.provider(tenant.id) as session:
        query = runs_query(routine=routine, statuses=[RunStatus(s) for s in statuses])
        rows = (await session.execute(query.order_by(RoutineRun.created_at.desc(), RoutineRun.id.desc())
                                      .limit(limit))).scalars().all()
    click.echo(f"{'RUN':<36} {'ROUTINE':<22} {'PERIOD':<10} {'TRIGGER':<8} {'STATUS':<9} {'STARTED':<16} ITEMS")
    for run in rows:
        view = run_view(run, locale="en")
        click.echo(f"{view['id']:<36} {view['routine']:<22} {view['period']:<10} {view['trigger']:<8} "
                   f"{view['status']:<9} {_local(run.started_at or run.created_at, tenant.timezone):<16} {_counts(view)}")
        if view["error"]:
            click.echo(f"  error: {view['error']}")


@routines.command("start")
@TENANT_ARGUMENT
@click.argument("routine")
@click.option("--period", default=None, help="YYYY-MM (monthly) or YYYY-MM-DD (daily); default: the current one.")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@FOLLOW_OPTION
@INTERVAL_OPTION
def routines_start(slug, routine, period, reason, follow, interval) -> None:
    """Queue a run of ROUTINE (the workers do it); with --follow, show its progress and outcome.

    Exit code 0 when the run succeeded (or was only queued), 1 when it finished partial or failed, or
    was paused while followed; 2 when it was refused."""

    async def start(session, tenant):

        return await start_run(session, routine, period=period, actor=Actor.cli(), reason=reason)

    _act_and_follow(slug, start, follow, interval)


@routines.command("retry")
@TENANT_ARGUMENT
@click.argument("run_id", type=click.UUID)
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@FOLLOW_OPTION
@INTERVAL_OPTION
def routines_retry(slug, run_id, reason, follow, interval) -> None:
    """Retry the failed items of a finished run, as a new run; exit codes as for start."""

    async def retry(session, tenant):

        return await retry_failed(session, run_id, actor=Actor.cli(), reason=reason)

    _act_and_follow(slug, retry, follow, interval)


def _act_and_follow(slug, action, follow: bool | None, interval: float) -> None:
    follow = sys.stdout.isatty() if follow is None else follow
    try:
        code = _start_and_follow(slug, action, follow, interval)
    except KeyboardInterrupt:
        click.echo("\nstopped following; the run goes on (see: backoffice routines runs)", err=True)
        code = 130
    sys.exit(code)


@_run_db
async def _start_and_follow(database, slug, action, follow: bool, interval: float) -> int:

    tenant = await _tenant_named(database, slug)
    async with database.provider(tenant.id) as session:
        run = await action(session, tenant)
        view = run_view(run, locale="en")
    click.echo(f"queued run {view['id']}: {view['title']} for {view['period']} ({view['trigger']})")
    if not follow:
        return 0
    return await _follow(database, tenant, run.id, interval)


async def _follow(database, tenant, run_id, interval: float) -> int:
    """Poll the run until it finishes, drawing a progress bar of settled items over all items (plain
    lines when stdout is not a terminal), then print the outcome and the failed items."""


    terminal = sys.stdout.isatty()
    last_line = None
    with ExitStack() as stack:
        bar = None
        while True:
            async with database.provider(tenant.id) as session:
                run = await get_owned(session, RoutineRun, run_id)
            view = run_view(run, locale="en")
            settled = run.items_done + run.items_failed
            if bar is None and run.status != RunStatus.QUEUED and run.items_total:
                noun = get_routine(run.routine).item_noun.get("en", "items")
                bar = stack.enter_context(click.progressbar(length=run.items_total, label=f"{view['title']} "
                                                            f"{run.period}: {noun}", show_pos=True))
            if bar is not None and settled > bar.pos:
                bar.update(settled - bar.pos)
            line = f"{settled:,}/{run.items_total:,} settled, {run.items_failed:,} failed"
            if not terminal and run.items_total and line != last_line:
                click.echo(line)
                last_line = line
            if run.status in FINISHED_STATUSES:
                break
            if run.status == RunStatus.PAUSED:
                click.echo(f"\nthe routine is paused for {tenant.slug}: the run waits for "
                           f"`backoffice routines resume {tenant.slug} {run.routine}`")
                return 1
            await asyncio.sleep(interval)
    click.echo(f"{view['title']} for {run.period}: {run.status.value}, {_counts(view)}")
    if run.error:
        click.echo(f"error: {run.error}")
    if run.items_failed:
        async with database.provider(tenant.id) as session:
            failed = await run_detail(session, run.id, item_status=ItemStatus.FAILED, limit=FAILED_SHOWN)
        for item in failed.items:
            click.echo(f"  failed: {item.label}: {item.error}")
        if failed.items_truncated:
            click.echo(f"  ... and {failed.items_matching - len(failed.items):,} more "
                       f"(backoffice routines runs, or the staff API)")
    return 0 if run.status == RunStatus.SUCCEEDED else 1


@routines.command("pause")
@TENANT_ARGUMENT
@click.argument("routine")
@click.option("--reason", default=None, help="Why; kept in the audit log and shown to the tenant's staff.")
@_run_db
async def routines_pause(database, slug, routine, reason) -> None:
    """No scheduled run starts, and a running one's pending items wait until resumed."""

    tenant = await _tenant_named(database, slug)
    async with database.provider(tenant.id) as session:
        await pause(session, routine, actor=Actor.cli(), reason=reason)
    click.echo(f"paused {routine} for {tenant.slug}")


@routines.command("resume")
@TENANT_ARGUMENT
@click.argument("routine")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@_run_db
async def routines_resume(database, slug, routine, reason) -> None:
    """Run the routine again; the runs it held go on from their pending items."""

    tenant = await _tenant_named(database, slug)
    async with database.provider(tenant.id) as session:
        await resume(session, routine, actor=Actor.cli(), reason=reason)
    click.echo(f"resumed {routine} for {tenant.slug}")


# --- secrets at rest ------------------------------------------------------------------------------

@main.group("secrets")
def secrets_group() -> None:
    """Secrets at rest: make a key, re-encrypt every stored secret under the newest key."""


@secrets_group.command("new-key")
def secrets_new_key() -> None:
    """Print a new key for BACKOFFICE_SECRETS_KEYS (put it first; keep the old ones after it)."""

    click.echo(new_key())


@secrets_group.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows read, re-encrypted and written back per transaction.")
@_run_db
async def secrets_rotate(database, batch_size) -> None:
    """Re-encrypt every stored secret, in every tenant, under the first key of BACKOFFICE_SECRETS_KEYS.

    Safe to run again (values already under that key are left alone). Afterwards the older keys can be
    removed from BACKOFFICE_SECRETS_KEYS.
    """

    columns = list(SECRET_COLUMNS)
    total = await count_secret_rows(database, columns)
    with click.progressbar(length=total, label="Re-encrypting secrets", file=sys.stderr) as bar:
        report = await rotate_all(database, columns, acting=Actor.cli(), batch_size=batch_size, progress=bar.update)
    for label, rows in report.rows.items():
        click.echo(f"{label}: {rows} rows read, {report.resealed[label]} re-encrypted")
    if report.unreadable:
        for where in report.unreadable:
            click.echo(f"error: no listed key decrypts {where}", err=True)
        click.echo("error: keep the key these were written with in BACKOFFICE_SECRETS_KEYS, or set them again",
                   err=True)
        sys.exit(1)
    click.echo("done: every secret is under the newest key; older keys can be removed from BACKOFFICE_SECRETS_KEYS")


# --- dead letters ---------------------------------------------------------------------------------

@main.group("deadletters")
def deadletters() -> None:
    """A tenant's dead letters (failed events, dead deliveries) and unmatched events: replay them."""


@deadletters.command("replay")
@TENANT_ARGUMENT
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M",
                                                       "%Y-%m-%d"]), default=None,
              help="Start of the window (inclusive); without an offset, in the tenant's time zone.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M",
                                                       "%Y-%m-%d"]), default=None,
              help="End of the window (exclusive); without an offset, in the tenant's time zone.")
@click.option("--unmatched", is_flag=True, help="Replay the window's unmatched events instead of its dead letters.")
@click.option("--item", "items", multiple=True, metavar="KIND:ID",
              help="Replay this item (event:<id>, message:<id>, webhook:<id>) instead of a window; repeat.")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@FOLLOW_OPTION
@INTERVAL_OPTION
def deadletters_replay(slug, since, until, unmatched, items, reason, follow, interval) -> None:
    """Replay a time window of the tenant's dead letters (or the items named with --item), then, with
    --follow, show what became of them: a progress bar of settled items, then each one that failed again.

    Exit code 0 when every requeued item was processed or delivered (or was only queued), 1 when some
    failed again or more matched the window than one replay takes, 2 when refused."""
    follow = sys.stdout.isatty() if follow is None else follow
    try:
        code = _replay_and_follow(slug, since, until, unmatched, items, reason, follow, interval)
    except KeyboardInterrupt:
        click.echo("\nstopped following; the replayed items go on (see the console's replay page)", err=True)
        code = 130
    sys.exit(code)


@_run_db
async def _replay_and_follow(database, slug, since, until, unmatched, items, reason, follow: bool,
                             interval: float) -> int:
    tenant = await _tenant_named(database, slug)
    zone = ZoneInfo(tenant.timezone)
    async with database.provider(tenant.id) as session:
        if items:
            if since or until:
                raise ValidationFailed(FieldError("item", "give either --item or --since/--until, not both"))
            refs = [deadletter_service.ItemRef.parse(item, "item") for item in items]
            replay = await deadletter_service.replay_selection(session, refs, acting=Actor.cli(), reason=reason)
        else:
            replay = await deadletter_service.replay_window(
                session, since=since and (since if since.tzinfo else since.replace(tzinfo=zone)),
                until=until and (until if until.tzinfo else until.replace(tzinfo=zone)),
                what="unmatched" if unmatched else "dead_letters", acting=Actor.cli(), reason=reason)
    requeued = sum(1 for item in replay.items if item["action"] == "requeued")
    click.echo(f"replay {replay.id}: {requeued:,} requeued, {len(replay.items) - requeued:,} skipped")
    for item in replay.items:
        if item["action"] == "skipped":
            click.echo(f"  skipped {item['kind']}:{item['id']}: {item['reason']}")
    if replay.remaining:
        click.echo(f"{replay.remaining:,} more matched the window: run the command again for the next ones")
    if not follow or not requeued:
        return 1 if replay.remaining else 0
    terminal = sys.stdout.isatty()
    last_line = None
    with click.progressbar(length=requeued, label="Replayed items settled", show_pos=True) as bar:
        while True:
            async with database.provider(tenant.id) as session:
                outcome = await deadletter_queries.replay_outcome(session, replay.id, limit=FAILED_SHOWN)
            settled = outcome.totals.get("done", 0) + outcome.totals.get("failed_again", 0) + \
                outcome.totals.get("gone", 0)
            if settled > bar.pos:
                bar.update(settled - bar.pos)
            line = f"{settled:,}/{requeued:,} settled, {outcome.totals.get('failed_again', 0):,} failed again"
            if not terminal and line != last_line:
                click.echo(line)
                last_line = line
            if outcome.settled:
                break
            await asyncio.sleep(interval)
    failed = outcome.totals.get("failed_again", 0)
    click.echo(f"{outcome.totals.get('done', 0):,} processed or delivered, {failed:,} failed again")
    for item in outcome.items:
        if item.state == "failed_again":
            click.echo(f"  failed again: {item.kind}:{item.id} ({item.label}): {item.error}")
    return 1 if failed or replay.remaining else 0


# --- a tenant's clock (demo, staging) --------------------------------------------------------------

@main.group()
def clock() -> None:
    """Run one tenant's clock forward so its due timers fire now (never in production)."""


@clock.command("advance")
@click.argument("slug")
@click.option("--hours", type=click.FloatRange(min=0), default=0.0, help="Hours to move forward.")
@click.option("--days", type=click.FloatRange(min=0), default=0.0, help="Days to move forward.")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@_run_db
async def clock_advance(database, slug, hours, days, reason) -> None:
    """Move one company's clock forward (demo and staging only), so its due timers fire now."""


    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
    try:
        async with database.provider(tenant.id) as session:
            offset = await advance_clock(session, tenant.id, by=timedelta(days=days, hours=hours),
                                         environment=database.settings.environment, acting=Actor.cli(), reason=reason)
    except ClockShiftRefused as refused:
        click.echo(f"error: {refused}", err=True)
        sys.exit(3)
    click.echo(f"{tenant.slug}'s clock is {_duration(offset)} ahead of real time; timers due by then fire at the "
               f"scheduler's next tick")


@clock.command("reset")
@click.argument("slug")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@_run_db
async def clock_reset(database, slug, reason) -> None:
    """Put one company's clock back to real time."""

    async with database.system() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.provider(tenant.id) as session:
        await reset_clock(session, tenant.id, acting=Actor.cli(), reason=reason)
    click.echo(f"{tenant.slug} is back on real time")


def _duration(delta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


if __name__ == "__main__":
    main()
