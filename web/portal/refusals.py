"""What a service refused, and why a delivery failed, in the reader's language.

Services name the problem in English (the API's problem details keep that wording): a fixed sentence is a
catalogue message id, and a sentence built around a value (a host, a number) is matched here and said
again with the value kept. An operating-system error is never shown as such: ``[Errno -2] Name or service
not known`` becomes "the address was not found (DNS)". A sentence nobody taught this module stays as the
service wrote it (the browser walk in tests/web/test_browser_walk.py finds those).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from backoffice.platform.errors import FieldError

Gettext = Callable[[str], str]

# (pattern over the English sentence, message id with the pattern's groups as %(name)s). First match wins.
PATTERNS: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern), message) for pattern, message in (
    (r"^cannot resolve (?P<host>\S+): (?:\[Errno -3\]|.*[Tt]emporary failure).*$",
     "The DNS could not be asked about %(host)s just now; try again in a moment."),
    (r"^cannot resolve (?P<host>\S+): .*$", "The address %(host)s was not found (DNS): check it for typos."),
    (r"^(?P<host>\S+) resolves to (?P<address>\S+), which is not a public address: .*$",
     ("%(host)s points to %(address)s, which is not an address on the internet: the platform only calls public "
      "addresses.")),
    (r"^(?P<host>\S+) is not a public address: .*$",
     "%(host)s is not an address on the internet: the platform only calls public addresses."),
    (r"^at most (?P<n>\d+) characters$", "At most %(n)s characters."),
    (r"^expected at most (?P<n>\d+) characters$", "At most %(n)s characters."),
    (r"^at most (?P<n>\d+) endpoints per company$", "At most %(n)s endpoints per company."),
    (r"^expected at least (?P<n>\d+) characters$", "At least %(n)s characters."),
    (r"^unknown event types: (?P<types>.+?); expected some of .*$",
     "Unknown event types: %(types)s. Tick the ones in the list."),
    (r"^this company allows keys of at most (?P<n>\d+) days; give 1-\d+$",
     "This company allows keys of at most %(n)s days: give 1 to %(n)s."),
    (r"^this company allows keys of at most (?P<n>\d+) requests a minute$",
     "This company allows keys of at most %(n)s requests a minute."),
    (r"^a user with e-mail (?P<email>\S+) already exists in this company$",
     "A user with the e-mail %(email)s already exists in this company."),
    ((r"^(?P<source>\w+) customer (?P<id>\S+) \((?P<name>.*)\) has no valid CPF/CNPJ \((?P<document>[^:]*): .*\); "
      r"not matched nor created$"),
     "%(source)s customer %(id)s (%(name)s) has no valid CPF/CNPJ (%(document)s): neither matched nor created."),
    ((r"^(?P<source>\w+) customer (?P<id>\S+) \((?P<name>.*), (?P<document>\w+ \d+)\) is not a customer of this "
      r"company, and its policy does not create customers from the gateway.*$"),
     ("%(source)s customer %(id)s (%(name)s, %(document)s) is not a customer of this company, and its policy does "
      "not create customers from the gateway.")),
    ((r"^no customer of this company matches (?P<source>\w+) customer (?P<id>\S+), and there is no enabled \w+ "
      r"connection to ask for its record$"),
     ("No customer of this company matches %(source)s customer %(id)s, and no %(source)s connection is enabled to "
      "ask for its record.")),
    (r"^no customer of this company matches (?P<source>\w+) customer (?P<id>\S+), which \w+ does not know$",
     "No customer of this company matches %(source)s customer %(id)s, and %(source)s does not know it either."),
    (r"^no customer of this company matches (?P<what>[^;]+)$", "No customer of this company matches %(what)s."),
    (r"^(?:\w+: )?expected a hex colour like (?P<example>#[0-9a-fA-F]{6})$",
     "Expected a hex colour like %(example)s."),
    (r"^expected at most (?P<limit>\d+) KiB, got (?P<size>\d+) KiB$",
     "At most %(limit)s KiB; this file has %(size)s KiB."),
    # A call to a provider (connectors/http.py): the call's label (method and path) is kept as written.
    (r"^(?P<call>[A-Z]+ [^:]+): provider refused with (?P<status>\d{3}): (?P<answer>.*)$",
     "%(call)s: the provider refused the call (HTTP %(status)s). Its answer: %(answer)s"),
    (r"^(?P<call>[A-Z]+ [^:]+): provider answered (?P<status>\d{3})$",
     "%(call)s: the provider failed (HTTP %(status)s); it will be tried again."),
    (r"^(?P<call>[A-Z]+ [^:]+): no answer within (?P<seconds>[\d.]+) s$",
     "%(call)s: the provider did not answer within %(seconds)s s."),
    (r"^(?P<call>[A-Z]+ [^:]+): cannot reach the provider \((?P<error>\w+)\)$",
     "%(call)s: the provider could not be reached (%(error)s)."),
    (r"^(?P<call>[A-Z]+ [^:]+): target refused: (?P<why>.+)$", "%(call)s: address refused. %(why)s"),
)]
# Groups that hold another service sentence, said in turn.
NESTED = {"why"}
# Words the services put where a value is missing.
MISSING = {"none", "no name"}

# Fixed sentences, each a catalogue message id (listed so tests/web/portal/test_i18n.py can see them).
SENTENCES = (
    "expected a whole number of days", "expected a positive number of days", "expected an https URL",
    "expected an http(s) URL with a host", "credentials in the URL are not allowed",
    "the URL's port is not a number between 0 and 65535", "say why the endpoint is disabled",
    "the company must keep at least one active admin", "this link is invalid, expired or already used",
    "no e-mail connector configured for this company",
    "expected the provider's issuer URL, like https://login.example.com",
    "expected an https URL: the provider's keys and tokens must not travel in clear",
    "expected one or more e-mail domains, like aurora.example", "expected the client id the provider gave this company",
    "expected the client secret the provider gave this company", "expected a PNG, JPEG or WebP image",
)


def readable(message: str, gettext: Gettext) -> str:
    """One English sentence from a service (or a stored failure reason) in the reader's language."""
    message = (message or "").strip()
    translated = gettext(message)
    if translated != message:
        return translated
    for pattern, message_id in PATTERNS:
        match = pattern.match(message)
        if match:
            values = {name: "—" if value in MISSING else readable(value, gettext) if name in NESTED else value or ""
                      for name, value in match.groupdict().items()}
            return gettext(message_id) % values
    return message


def readable_errors(errors: Iterable[FieldError], gettext: Gettext,
                    labels: Mapping[str, str] | None = None) -> list[FieldError]:
    """Each field problem with the field's name as the page calls it and the sentence in the reader's language."""
    labels = labels or {}
    return [FieldError(labels.get(error.field, error.field), readable(error.message, gettext)) for error in errors]
