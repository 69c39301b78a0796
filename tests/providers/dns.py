"""A tiny authoritative DNS server on loopback (UDP and TCP), for custom-host verification.

It speaks the DNS protocol (RFC 1035) through dnspython's message codec: it answers TXT questions for the
names in ``records`` (an exact name match, case-insensitive), NXDOMAIN for any other name, and logs every
question. The platform's resolver is pointed at it with ``BACKOFFICE_DNS_NAMESERVER=127.0.0.1:<port>``.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}  # name (no final dot) -> TXT strings
        self.questions: list[tuple[str, str]] = []
        self.port = 0

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, name: str, *values: str) -> None:
        self.records[name.lower().rstrip(".")] = list(values)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        self.questions.append((name, dns.rdatatype.to_text(question.rdtype)))
        values = self.records.get(name)
        if values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            texts = [f'"{value}"' for value in values]
            response.answer.append(dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, *texts))
        return response.to_wire()


@contextmanager
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            sock.sendto(server.answer(data), self.client_address)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            size = int.from_bytes(self.request.recv(2), "big")
            data = b""
            while len(data) < size:
                data += self.request.recv(size - len(data))
            reply = server.answer(data)
            self.request.sendall(len(reply).to_bytes(2, "big") + reply)

    for _ in range(50):  # a UDP port whose TCP twin is free too (answers too long for UDP go over TCP)
        udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
        server.port = udp.server_address[1]
        try:
            tcp = socketserver.ThreadingTCPServer(("127.0.0.1", server.port), Tcp)
            break
        except OSError:
            udp.server_close()
    else:
        raise RuntimeError("no free loopback port for the DNS server")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (udp, tcp)]
    for thread in threads:
        thread.start()
    try:
        yield server
    finally:
        for s in (udp, tcp):
            s.shutdown()
            s.server_close()
