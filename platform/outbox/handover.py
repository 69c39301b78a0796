"""What the relay knows of the messages it handed to Redis: is a row's message still waiting there?

A row handed over and not yet taken by a job (``lease.py``) has only a short hand-over lease. When the
lease runs out the row's message is in one of three places, and each wants something else:

- **still waiting** in Redis: queued behind other work, or fetched by a live worker that has not started it
  yet. Handing the row out again would only put a second copy behind the first (under a backlog a row was
  handed out up to 9 times, and every copy lengthened the queue the next one waited in). The relay
  extends the hand-over lease instead, and looks again when it runs out.
- **gone**: lost with Redis (a restart empties it), or run and acknowledged without completing the row (a
  job that failed lets go of its rows). The row is handed out again at once.
- **orphaned**: fetched by a worker process that died before it started the job (dramatiq's prefetch).
  dramatiq would put it back only after its own heartbeat timeout (60 s) and then at random (its queue
  maintenance runs on about one command in a thousand), so the relay hands the row out again itself, on
  the queue of recovered work (``RECOVERED_QUEUE``), ahead of the backlog. Likewise a message a live worker
  fetched and has still not started ``FETCHED_GRACE_SECONDS`` after a look first found it fetched (the
  moment is kept on the pointer): a dramatiq consumer that hits a connection error restarts and forgets
  the messages it had fetched, and dramatiq never puts back a live process's messages.

So after each send the relay keeps, per row, a pointer to the message that carries it
(``<namespace>:outbox-handover:<row id>`` = ``<queue> <redis message id>``, expiring after
``POINTER_TTL_SECONDS``), and :func:`look_up` answers for a round's expired rows in one script call. A
missing pointer (Redis lost, the write failed, it expired) means "gone": the safe direction is a second
copy, which ``take`` makes harmless, never a row left waiting for a message that does not exist.

A worker process is taken for dead when dramatiq's heartbeat of its broker (written by every command it
sends to Redis: an idle consumer polls at least every second, a busy one acknowledges each message) is
older than ``alive_within`` seconds; the score is the worker host's clock, so hosts must keep their clocks
within a few seconds of each other (NTP).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from dramatiq.brokers.redis import RedisBroker

# A message waiting longer than this is handed out again anyway (a copy, never a loss). Pointers are not
# deleted when their row completes: they cost ~100 bytes of Redis each for this long.
POINTER_TTL_SECONDS = 900
# A message a live worker fetched starts within a few jobs' time (dramatiq prefetches two per thread); one
# still not started this long after a look found it fetched was forgotten by its consumer.
FETCHED_GRACE_SECONDS = 30.0

# ARGV: namespace, now (ms), alive_within (ms), fetched_grace (ms), row ids...
# Returns {waiting row ids, orphaned row ids}; a row in neither is gone.
_LOOK_UP = """
local namespace, now = ARGV[1], tonumber(ARGV[2])
local alive_within, fetched_grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local beats = redis.call("zrange", namespace .. ":__heartbeats__", 0, -1, "WITHSCORES")
local waiting, orphaned = {}, {}
for i = 5, #ARGV do
    local row = ARGV[i]
    local key = namespace .. ":outbox-handover:" .. row
    local pointer = redis.call("get", key)
    if pointer then
        local queue, message = string.match(pointer, "^(%S+) (%S+)")
        local seen = tonumber(string.match(pointer, "^%S+ %S+ (%d+)$"))
        if queue and redis.call("hexists", namespace .. ":" .. queue .. ".msgs", message) == 1 then
            local lost = false
            for b = 1, #beats, 2 do
                if redis.call("sismember", namespace .. ":__acks__." .. beats[b] .. "." .. queue, message) == 1 then
                    if tonumber(beats[b + 1]) < now - alive_within then
                        lost = true  -- fetched by a process that died
                    elseif not seen then  -- fetched by a live one: remember since when
                        redis.call("set", key, queue .. " " .. message .. " " .. now, "KEEPTTL")
                    else  -- and still not started: its consumer forgot it (a connection error)
                        lost = seen < now - fetched_grace
                    end
                    break
                end
            end
            if lost then table.insert(orphaned, row) else table.insert(waiting, row) end
        end
    end
end
return {waiting, orphaned}
"""

def tracks(broker: object) -> bool:
    """Whether the relay can see the broker's messages (Redis); the in-process broker of the embedded mode
    lives and dies with the relay's own process."""
    return isinstance(broker, RedisBroker)


def remember(broker: RedisBroker, sent: Iterable[tuple[uuid.UUID, str, str]]) -> None:
    """Keep a pointer per row to the message carrying it: ``sent`` is (row id, queue, Redis message id)."""
    pipeline = broker.client.pipeline(transaction=False)
    for row_id, queue, message_id in sent:
        pipeline.set(f"{broker.namespace}:outbox-handover:{row_id}", f"{queue} {message_id}",
                     ex=POINTER_TTL_SECONDS)
    pipeline.execute()


def look_up(broker: RedisBroker, row_ids: list[uuid.UUID], *, alive_within: float,
            fetched_grace: float | None = None) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The rows whose message still waits in Redis, and those whose message was fetched and will not run
    (by a dead worker, or by a live one ``fetched_grace`` ago and still not started)."""
    if not row_ids:
        return set(), set()
    script = broker.client.register_script(_LOOK_UP)
    waiting, orphaned = script(args=[broker.namespace, int(time.time() * 1000), int(alive_within * 1000),
                                     int((FETCHED_GRACE_SECONDS if fetched_grace is None else fetched_grace) * 1000),
                                     *map(str, row_ids)])
    return ({uuid.UUID(_text(row)) for row in waiting}, {uuid.UUID(_text(row)) for row in orphaned})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
