"""One language per page, proven by walking the seeded demo in a real browser (Debian's chromium driven by
Playwright), once in pt-BR and once in English.

The walk signs in to Aurora's portal as its admin (a front-office user who also sees the admin pages) and
follows every link the portal offers, one page per kind of address (one customer, one task, one run...);
it submits the API key and webhook forms with bad input (a host no DNS knows, a private address) and opens
an unknown page. Then it signs in to the staff console as the demo's provider admin (TOTP enrolled on the
way) and follows every console link the same way, suspends Vitta from its settings page and opens Vitta's
portal (the suspended page). Every page is saved as tests/artifacts/walk-<area>-<page>-<language>.png.

On each page the visible text (``document.body.innerText``, plus the title, placeholders, labels read out
and tooltips) is read line by line; a line that holds two or more distinct stop-words of the other language
is a sentence in the wrong language. Data is not language: elements marked ``translate="no"`` (names,
e-mail addresses, notes people wrote), ``code``/``pre``/``kbd``/``samp``, elements whose ``lang`` is
another language (the language picker's own names), addresses, e-mail addresses and dotted codes such as
``payment.overdue`` are left out before the words are counted. The failure lists each page and its lines.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from backoffice.platform.security import outbound
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app
from backoffice.web.entry.demo import DEMO_PASSWORD
from tests.demo_support import seed_demo_for_test
from tests.web.console.conftest import Totp
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium

# Stop-words that belong to one language only: words both languages write ("a", "as", "do", "no", "e"...)
# would flag a line of the right language, so they are not on either list.
ENGLISH = frozenset(
    "the is of and to with your has was this for not are you be will it an by from can have there what when "
    "which been its or at into were does yet these those their they that would should could than then here "
    "our we his her how why after before until while about".split())
PORTUGUESE = frozenset(
    "de da que não para com uma os é está seu sua dos das um ao pelo pela foi ser são mais sem ainda você "
    "nenhum nenhuma quando como nos na também já até pelos pelas isso este esta esse essa ele ela seus suas "
    "às foram será há aqui onde qual quem depois antes então".split())
OTHER = {"pt-BR": ENGLISH, "en": PORTUGUESE}
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
# Data that is not a sentence: addresses, e-mail addresses, dotted codes (payment.overdue), paths.
DATA = re.compile(r"\S+@\S+|\b\w+://\S+|\S*\w\.\w\S*|\S*/\S+")

# What the walk reads of a page: the text people see, the title, and the words read out or shown on hover;
# data elements are replaced by a blank first (and put back after).
READ_TEXT = """() => {
  const lang = document.documentElement.lang;
  const data = [...document.querySelectorAll('[translate="no"], code, pre, kbd, samp, script, style, template')]
    .concat([...document.querySelectorAll('[lang]')].filter(el => el !== document.documentElement && el.lang !== lang));
  const blanks = data.filter(el => el.isConnected).map(el => [el, document.createTextNode(' ')]);
  for (const [el, blank] of blanks) el.replaceWith(blank);
  const said = [...document.querySelectorAll('[aria-label], [placeholder], [title], img[alt]')]
    .flatMap(el => ['aria-label', 'placeholder', 'title', 'alt'].map(name => el.getAttribute(name)))
    .filter(Boolean);
  const text = [document.title, document.body.innerText, ...said].join('\\n');
  for (const [el, blank] of blanks.reverse()) blank.replaceWith(el);  // the page is left as it was
  return text;
}"""

# Addresses a walk does not open: leaving, streams and polls that never end, downloads, the logo.
SKIP = re.compile(r"/(logout|live|poll|progress|logo)$|\.csv$|/sso/(start|callback)$|^/(static|api|hooks)/")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_PAGES = 45  # per area: the demo's portal and console each have fewer kinds of page than this


def foreign_lines(text: str, locale: str) -> list[str]:
    """Lines of ``text`` that read as a sentence of the other language (two or more of its stop-words)."""
    found = []
    for line in text.splitlines():
        words = {word.lower() for word in WORD.findall(DATA.sub(" ", line))}
        hits = sorted(words & OTHER[locale])
        if len(hits) >= 2:
            found.append(f"{line.strip()[:200]}  [{', '.join(hits)}]")
    return list(dict.fromkeys(found))


def test_the_detector_flags_the_other_language_and_leaves_data_alone():
    assert foreign_lines("Nenhuma notificação.\nThe key is revoked and cannot be used", "pt-BR") == [
        "The key is revoked and cannot be used  [and, be, is, the]"]
    assert foreign_lines("Casa do Pão Ltda · financeiro@casadopao.example · payment.overdue", "en") == []
    assert foreign_lines("O endereço não foi encontrado (DNS)", "en") != []
    assert foreign_lines("Webhook de https://example.com/the/is/of para o sistema", "pt-BR") == []


def _kind(path: str, query: str, companies: dict[str, str]) -> str:
    """One name per kind of page: ids become 'id', the query keeps its names (not their values). A company's
    pages in the console are walked for each company (their failures differ): its id becomes its slug."""
    company = re.match(rf"/staff/tenants/({UUID.pattern})", path)
    if company:
        path = path.replace(company.group(1), companies.get(company.group(1), "id"), 1)
    shape = UUID.sub("id", path).strip("/").replace("/", "-") or "home"
    keys = sorted({key for key, _ in parse_qsl(query)})
    return shape + "".join(f"-{key}" for key in keys)


@dataclass
class Walk:
    page: object
    origin: str
    locale: str
    companies: dict[str, str]  # tenant id -> slug
    seen: dict[str, str] = field(default_factory=dict)  # kind of page -> the address opened
    problems: dict[str, list[str]] = field(default_factory=dict)

    async def read(self, area: str, name: str, *, status: int | None = None) -> None:
        """Screenshot the page as it stands, then check its words."""
        shot = ARTIFACTS / f"walk-{area}-{name}-{self.locale}.png"
        await self.page.screenshot(path=shot, full_page=True)
        where = f"{area} {name} ({urlsplit(self.page.url).path})"
        if status is not None and status >= 400:
            self.problems.setdefault(where, []).append(f"answered {status}")
        lines = foreign_lines(await self.page.evaluate(READ_TEXT), self.locale)
        if lines:
            self.problems.setdefault(where, []).extend(lines)

    async def visit(self, area: str, name: str, address: str, *, expect_status: int | None = None) -> None:
        response = await self.page.goto(address if address.startswith("http") else self.origin + address)
        status = response.status if response else 0
        await self.read(area, name, status=None if expect_status == status else status)

    async def crawl(self, area: str, start: str, prefix: str) -> None:
        """Breadth first from ``start``, one page per kind of address under ``prefix``."""
        queue = [self.origin + start]
        while queue and len(self.seen) < MAX_PAGES * 2:
            address = queue.pop(0)
            parts = urlsplit(address)
            kind = f"{area}:{_kind(parts.path, parts.query, self.companies)}"
            if kind in self.seen:
                continue
            self.seen[kind] = parts.path + (f"?{parts.query}" if parts.query else "")
            response = await self.page.goto(address)
            await self.read(area, kind.split(":", 1)[1], status=response.status if response else 0)
            links = await self.page.eval_on_selector_all("a[href]:not([download])", "els => els.map(e => e.href)")
            for link in links:
                target = urlsplit(link)
                if f"{target.scheme}://{target.netloc}" != self.origin or not target.path.startswith(prefix):
                    continue
                kind = f"{area}:{_kind(target.path, target.query, self.companies)}"
                if SKIP.search(target.path) or kind in self.seen:
                    continue
                queue.append(f"{self.origin}{target.path}" + (f"?{target.query}" if target.query else ""))

    def report(self) -> str:
        return "\n".join(f"{where}:\n    " + "\n    ".join(lines) for where, lines in self.problems.items())


async def _portal(walk: Walk, expect) -> None:
    page = walk.page
    await walk.visit("portal", "login", "/aurora/login")
    await walk.visit("portal", "forgot", "/aurora/password/forgot")
    await walk.visit("portal", "reset-invalid", "/aurora/password/reset/no-such-token", expect_status=410)
    await walk.visit("portal", "demo-mailbox", "/aurora/demo/mailbox")
    await page.goto(f"{walk.origin}/aurora/login")
    for password in ("not-the-password", DEMO_PASSWORD):
        await page.locator("#email").fill("ana@aurora.example")
        await page.locator("#password").fill(password)
        await page.locator("#password").press("Enter")
        if password != DEMO_PASSWORD:
            await expect(page.locator("#login-error")).to_be_visible()
            await walk.read("portal", "login-refused")
    await expect(page.locator("nav a[href$='/dashboard']")).to_be_visible()
    await walk.crawl("portal", "/aurora/dashboard", "/aurora/")

    # The admin forms with bad input: the errors name the problem in the reader's language.
    await page.goto(f"{walk.origin}/aurora/admin/api-keys")
    await page.evaluate("document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    await page.locator("#key-days").fill("dez")
    await page.locator("#key-days").press("Enter")
    await expect(page.locator("#form-errors")).to_be_visible()
    await walk.read("portal", "admin-api-keys-refused")
    for name, url in (("dns", "https://nao-existe.invalid/gancho"), ("private", "https://127.0.0.1/gancho")):
        await page.goto(f"{walk.origin}/aurora/admin/webhooks")
        await page.locator("#hook-url").fill(url)
        await page.locator("#hook-url").press("Enter")
        await expect(page.locator("#form-errors")).to_be_visible()
        await walk.read("portal", f"admin-webhooks-refused-{name}")
    await walk.visit("portal", "not-found", "/aurora/no-such-page", expect_status=404)


async def _console(walk: Walk, expect, reader) -> None:
    page = walk.page
    await walk.visit("console", "login", "/staff/login")
    for password in ("not-the-password", DEMO_PASSWORD):
        await page.locator("#email").fill("admin@provider.example")
        await page.locator("#password").fill(password)
        await page.locator("#password").press("Enter")
        if password != DEMO_PASSWORD:
            await expect(page.locator("#login-error")).to_be_visible()
            await walk.read("console", "login-refused")
    await expect(page.locator("#totp-secret")).to_be_visible()
    await walk.read("console", "enrol")
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    await page.locator("#code").fill(Totp(secret).code())
    await page.locator("#code").press("Enter")
    await expect(page.locator("#recovery-codes")).to_be_visible()
    await walk.read("console", "recovery-codes")
    await walk.crawl("console", "/staff/", "/staff/")
    await walk.visit("console", "not-found", "/staff/no-such-page", expect_status=404)

    # Suspend Vitta from its settings page; its portal then says so.
    await page.goto(f"{walk.origin}/staff/tenants")
    await page.locator("a", has_text="Vitta Academias").first.click()
    await page.goto(page.url.rstrip("/") + "/settings")
    suspend = page.locator("form:has(input[name=action][value=suspend])")
    reason = "Walk: contract on hold" if walk.locale == "en" else "Passeio: contrato em pausa"
    await suspend.locator("[name=reason]").fill(reason)
    await suspend.locator("button[type=submit]").click()
    await expect(page.locator("form:has(input[name=action][value=reactivate])")).to_be_visible()
    await walk.read("console", "tenant-settings-suspended")
    walk.page = reader  # a Vitta user who chose the language on Vitta's portal before it was suspended
    await walk.visit("portal", "suspended", "/vitta/login", expect_status=403)


async def _walk(database, locale: str) -> Walk:
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    await seed_demo_for_test(database)
    async with database.system() as session:
        companies = {str(tenant.id): tenant.slug for tenant in (await session.execute(select(Tenant))).scalars()}
    settings = database.settings.model_copy(update={"environment": "demo", "allow_private_targets": False})
    async with LiveServer(create_app(settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            # The browser asks for the other language: the page must follow the reader's choice, not it.
            pages = []
            for doors in (("staff", "aurora"), ("vitta",)):  # the reader's choice, made on each door's own form
                context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                                    locale="en-US" if locale == "pt-BR" else "pt-BR")
                pages.append(await context.new_page())
                for door in doors:
                    await pages[-1].goto(f"{server.url}/{door}/login")
                    await pages[-1].locator("#locale-choice").select_option(locale)
                    await pages[-1].locator("footer button[type=submit]").click()
                    await expect(pages[-1].locator("html")).to_have_attribute("lang", locale)
            page, reader = pages
            walk = Walk(page, server.url, locale, companies)
            await _portal(walk, expect)
            await _console(walk, expect, reader)
        finally:
            await browser.close()
    return walk


@pytest.mark.postgres_only
@pytest.mark.parametrize("locale", ["pt-BR", "en"])
async def test_every_page_of_the_demo_speaks_one_language(database, locale, monkeypatch):
    answer = outbound.lookup

    async def dns(host: str, port: int) -> list[str]:  # played in process: a .invalid name is unknown everywhere
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await answer(host, port)

    monkeypatch.setattr(outbound, "lookup", dns)
    walk = await _walk(database, locale)
    kinds = {kind.split(":")[0] for kind in walk.seen}
    assert kinds == {"portal", "console"}, f"the walk saw too little: {sorted(walk.seen)}"
    assert len(walk.seen) >= 25, f"the walk saw too little: {sorted(walk.seen)}"
    assert not walk.problems, f"pages in {locale} with lines of the other language:\n{walk.report()}"
