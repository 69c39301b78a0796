"""Webhook posts: a connection per post against kept-alive lanes, over plain HTTP and over TLS.

    .venv/bin/python -m tests.perf.bench_webhook_lanes            # 2,000 posts per way, 3 repetitions
    .venv/bin/python -m tests.perf.bench_webhook_lanes --posts 500

What ``webhooks.deliver`` does with a batch of 20 deliveries to one endpoint, repeated: the real
``SignedPost`` (signing, the outbound check at connect, the shared TLS context), 10 posts in flight at most.
- ``per post``: a client (and so a connection, a check, a TLS handshake) per post, as before 2026-12-07;
- ``lanes``: 10 lanes of 2 posts, each lane one kept-alive connection (``SignedPost.client``).
The receiver (``tests/perf/receiver.py``, its own process; with ``--tls`` behind a self-signed
certificate made for the run) answers 200 at once. The figure that matters is the poster's CPU per post
(``time.process_time``): the worker's event loop is CPU-bound, and a post's CPU is what it cannot spend on
process steps. The receiver's own ceiling is measured first: one kept-alive connection per lane, raw
sockets, no client library.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.providers.certs import self_signed

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
BATCH, CONCURRENCY = 20, 10


async def ceiling(port: int, posts: int) -> float:
    """Posts per second the receiver answers over 10 raw kept-alive connections (plain HTTP only)."""
    body = b'{"type":"payment.overdue"}'
    request = (b"POST /hook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%s" % (len(body), body))

    async def lane(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(11)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane(posts // CONCURRENCY) for _ in range(CONCURRENCY)))
    return posts / (time.perf_counter() - started)


async def run(way: str, url: str, posts: int) -> dict:
    from backoffice.platform.settings import get_settings
    from backoffice.tenants.webhooks.port import SignedPost

    poster = SignedPost(settings=get_settings().model_copy(update={"allow_private_targets": True}))
    secrets = ["whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    payload = {"type": "payment.overdue", "data": {"charge": {"amount_cents": 19990, "due_date": "2026-12-01"}},
               "customer": {"name": "Casa do Pão", "external_id": "cus_1"}}
    limit = asyncio.Semaphore(CONCURRENCY)
    statuses: list[int] = []

    async def per_post(n: int) -> None:
        async with limit:
            statuses.append((await poster.post(url, secrets, f"msg_{n}", payload)).status)

    async def lane(numbers: list[int]) -> None:
        async with poster.client() as client:
            for n in numbers:
                async with limit:
                    statuses.append((await poster.post(url, secrets, f"msg_{n}", payload, client=client)).status)

    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, posts, BATCH):  # batch after batch, as delivery jobs come
        numbers = list(range(start, min(start + BATCH, posts)))
        if way == "per post":
            await asyncio.gather(*(per_post(n) for n in numbers))
        else:
            await asyncio.gather(*(lane(numbers[i::CONCURRENCY]) for i in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert statuses == [200] * posts, f"{way}: not every post was answered 200"
    return {"posts_per_s": round(posts / wall, 1), "cpu_ms_per_post": round(1000 * cpu / posts, 3)}


async def main(posts: int, repeats: int) -> dict:
    from tests.perf.bench_spine import free_port

    report: dict = {"when": dt.datetime.now(dt.UTC).isoformat(), "posts": posts, "batch": BATCH,
                    "concurrency": CONCURRENCY, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(Path(tmp), "127.0.0.1")
        os.environ["SSL_CERT_FILE"] = str(cert)  # the platform's TLS context trusts the run's certificate
        for scheme in ("http", "https"):
            port = free_port()
            cmd = [PY, "-m", "tests.perf.receiver", str(port)] + (["--tls", str(cert), str(key)]
                                                                  if scheme == "https" else [])
            receiver = subprocess.Popen(cmd, cwd=ROOT)
            try:
                await asyncio.sleep(1.0)
                if scheme == "http":
                    report["receiver_ceiling_posts_per_s"] = round(await ceiling(port, posts), 1)
                    print(f"receiver ceiling (raw kept-alive sockets): {report['receiver_ceiling_posts_per_s']}/s")
                url = f"{scheme}://127.0.0.1:{port}/hook"
                for way in ("per post", "lanes"):
                    runs = [await run(way, url, posts) for _ in range(repeats)]
                    report["runs"][f"{scheme} {way}"] = runs
                    print(f"{scheme:5} {way:8}  " + "  ".join(
                        f"{r['posts_per_s']:>7}/s {r['cpu_ms_per_post']:.3f} ms CPU" for r in runs)
                        + f"   median CPU {statistics.median(r['cpu_ms_per_post'] for r in runs):.3f} ms/post",
                        flush=True)
            finally:
                receiver.terminate()
                receiver.wait()
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(main(args.posts, args.repeats))
    out = ROOT / "tests" / "perf" / "results" / f"webhook-lanes-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out.relative_to(ROOT)}")
