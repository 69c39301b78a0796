"""``backoffice``: run the platform's processes and manage tenants, staff and users.

Every management command is an audited action (actor ``cli:<os user>``); errors name the field.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.settings import Settings, settings_or_exit


def _settings() -> Settings:
    return settings_or_exit()


def _run_db(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Run an async command with a Database; field errors become a clear message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from backoffice.platform.db.session import Database

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


# --- processes ------------------------------------------------------------------------------------

@main.command()
@click.option("--no-seed", is_flag=True, help="Do not create the demo tenants.")
def demo(no_seed: bool) -> None:
    """Embedded mode: migrate, seed two demo tenants and run everything in this process."""
    from backoffice.platform.runtime import run_embedded

    run_embedded(_settings(), seed=not no_seed)


@main.command()
def migrate() -> None:
    """Apply the Alembic migrations (as the schema owner)."""
    from backoffice.platform.db.migrate import upgrade

    upgrade(_settings())
    click.echo("database is at the latest migration")


@main.command()
def web() -> None:
    """Run the web server (API, webhooks, portal)."""
    from backoffice.platform.runtime import run_web

    run_web(_settings())


@main.command()
@click.option("--processes", default=1, show_default=True, help="Worker processes.")
def worker(processes: int) -> None:
    """Run dramatiq workers for every job (threads per process: BACKOFFICE_WORKER_THREADS)."""
    from backoffice.platform.runtime import run_worker

    run_worker(_settings(), processes)


@main.command()
def scheduler() -> None:
    """Run the scheduler (relay and durable timers); standbys wait for the leader's lock."""
    from backoffice.platform.runtime import run_scheduler

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
    from backoffice.tenants.registry.service import create_tenant

    branding = {"primary": primary_colour} if primary_colour else None
    async with database.system() as session:
        tenant = await create_tenant(session, slug=slug, display_name=display_name, legal_name=legal_name,
                                     cnpj=cnpj, timezone=timezone, locale=locale, branding=branding,
                                     acting=Actor.cli())
    click.echo(f"created tenant {tenant.slug} ({tenant.id})")


@tenants.command("list")
@_run_db
async def tenants_list(database) -> None:
    from backoffice.platform.documents import format_cnpj
    from backoffice.tenants.registry.service import list_tenants

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
    from backoffice.tenants.registry.service import get_tenant_by_slug, suspend_tenant

    async with database.system() as session:
        tenant = await suspend_tenant(session, await get_tenant_by_slug(session, slug), reason=reason,
                                      acting=Actor.cli())
    click.echo(f"suspended {tenant.slug}; its portal and API now refuse, its data is kept")


@tenants.command("reactivate")
@click.argument("slug")
@click.option("--reason", default=None)
@_run_db
async def tenants_reactivate(database, slug, reason) -> None:
    from backoffice.tenants.registry.service import get_tenant_by_slug, reactivate_tenant

    async with database.system() as session:
        tenant = await reactivate_tenant(session, await get_tenant_by_slug(session, slug), reason=reason,
                                         acting=Actor.cli())
    click.echo(f"reactivated {tenant.slug}")


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
    from backoffice.platform.staff.service import create_staff

    async with database.system() as session:
        member = await create_staff(session, email=email, name=name, role=role, password=password,
                                    acting=Actor.cli())
    click.echo(f"created {member.role.value} {member.email}")


@staff.command("assign")
@click.argument("email")
@click.argument("slug")
@click.option("--reason", default=None)
@_run_db
async def staff_assign(database, email, slug, reason) -> None:
    """Mobilise a staff member on a tenant."""
    from backoffice.platform.staff.service import assign_staff, get_staff_by_email
    from backoffice.tenants.registry.service import get_tenant_by_slug

    async with database.system() as session:
        member = await get_staff_by_email(session, email)
        tenant = await get_tenant_by_slug(session, slug)
        await assign_staff(session, staff=member, tenant=tenant, acting=Actor.cli(), reason=reason)
    click.echo(f"{member.email} now serves {tenant.slug}")


@staff.command("unassign")
@click.argument("email")
@click.argument("slug")
@click.option("--reason", default=None)
@_run_db
async def staff_unassign(database, email, slug, reason) -> None:
    """Demobilise a staff member from a tenant."""
    from backoffice.platform.staff.service import get_staff_by_email, unassign_staff
    from backoffice.tenants.registry.service import get_tenant_by_slug

    async with database.system() as session:
        member = await get_staff_by_email(session, email)
        tenant = await get_tenant_by_slug(session, slug)
        await unassign_staff(session, staff=member, tenant=tenant, acting=Actor.cli(), reason=reason)
    click.echo(f"{member.email} no longer serves {tenant.slug}")


@staff.command("list")
@_run_db
async def staff_list(database) -> None:
    from sqlalchemy import select

    from backoffice.platform.staff.models import Assignment, Staff
    from backoffice.tenants.registry.models import Tenant

    async with database.system() as session:
        members = (await session.execute(select(Staff).order_by(Staff.email))).scalars().all()
        rows = (await session.execute(
            select(Assignment.staff_id, Tenant.slug).join(Tenant, Tenant.id == Assignment.tenant_id)
            .where(Assignment.ended_at.is_(None)))).all()
    serving: dict[Any, list[str]] = {}
    for staff_id, slug in rows:
        serving.setdefault(staff_id, []).append(slug)
    for member in members:
        tenants_text = "all tenants" if member.role.value == "provider_admin" else ", ".join(sorted(serving.get(member.id, []))) or "-"
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
    from backoffice.tenants.registry.service import get_tenant_by_slug
    from backoffice.tenants.users.service import create_tenant_user

    if not sso_only and password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.tenant(tenant.id) as session:
        user = await create_tenant_user(session, email=email, name=name, role=role,
                                        password=None if sso_only else password, acting=Actor.cli())
    click.echo(f"created {user.role.value} {user.email} in {tenant.slug}")



# --- API keys -------------------------------------------------------------------------------------

@main.group()
def keys() -> None:
    """API keys of a tenant's systems."""


@keys.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="What uses the key (e.g. 'ERP integration').")
@click.option("--scope", "scopes", multiple=True, required=True, help="resource:read|write; repeat for more.")
@click.option("--expires-days", type=int, default=None, help="Lifetime in days; capped by the tenant's maximum.")
@click.option("--test", "test_mode", is_flag=True, help="A bo_test_ key instead of bo_live_.")
@_run_db
async def keys_create(database, slug, name, scopes, expires_days, test_mode) -> None:
    from backoffice.tenants.apikeys.service import create_api_key
    from backoffice.tenants.registry.service import get_tenant_by_slug

    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, slug)
    async with database.tenant(tenant.id) as session:
        new = await create_api_key(session, name=name, scopes=list(scopes), expires_days=expires_days,
                                   mode="test" if test_mode else "live", acting=Actor.cli())
    click.echo(f"created key {new.key.display_prefix}... ({new.key.id}) for {tenant.slug}; it is shown only once:",
               err=True)
    click.echo(new.secret)


if __name__ == "__main__":
    main()
