"""DNS TXT look-ups, for proofs a client publishes in its own zone (custom-host verification).

The resolver asks the system's servers, or the one ``BACKOFFICE_DNS_NAMESERVER`` names (``address`` or
``address:port``): an operator's choice of resolver, and how tests point the look-up at a local server.
Only the answer's text is used: nothing connects to the addresses a record names.
"""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.resolver

from backoffice.platform.settings import Settings

TIMEOUT = 5.0


class LookupFailed(Exception):
    """The DNS could not be asked (timeout, no server answered): try again later."""


def _resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    configured = settings.dns_nameserver.strip()
    if not configured:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        address, port = configured, 53
        if configured.count(":") == 1:  # address:port (an IPv6 address alone has several colons)
            address, _, text = configured.partition(":")
            port = int(text)
        elif configured.startswith("[") and "]:" in configured:
            address, _, text = configured[1:].partition("]:")
            port = int(text)
        resolver.nameservers = [str(ipaddress.ip_address(address))]
        resolver.port = port
    resolver.lifetime = TIMEOUT
    resolver.cache = None  # a record just published must be seen at the next "verify"
    return resolver


async def txt_records(name: str, settings: Settings) -> list[str]:
    """The TXT strings at ``name`` (each record's parts joined); empty when the name or the record does
    not exist. Raises LookupFailed when no server answered."""
    try:
        answer = await _resolver(settings).resolve(name, "TXT", raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as error:
        if isinstance(error, dns.resolver.NXDOMAIN):
            return []
        raise LookupFailed(f"no DNS server answered for {name}") from None
    except dns.exception.Timeout:
        raise LookupFailed(f"the DNS look-up of {name} timed out") from None
    if answer.rrset is None:
        return []
    return [b"".join(record.strings).decode("utf-8", errors="replace") for record in answer.rrset]
