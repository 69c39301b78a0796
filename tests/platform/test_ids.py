"""Row ids: time-ordered, unguessable, and never repeated by a forked worker process."""

from __future__ import annotations

import os

from backoffice.platform.db.base import new_id, new_ids


def test_ids_are_time_ordered_version_7_and_distinct():
    ids = [new_id() for _ in range(5000)] + new_ids(5000)
    assert len(set(ids)) == 10_000
    assert {i.version for i in ids} == {7}
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)  # millisecond prefix never goes back


def test_a_forked_process_draws_its_own_randomness():
    """The randomness is read ahead per thread; dramatiq forks its workers from a parent that may have
    read some already: a child must not hand out the parent's next ids."""
    new_id()  # the parent has a pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send ten ids, leave at once
        os.close(read)
        os.write(write, b"".join(new_id().bytes for _ in range(10)))
        os._exit(0)
    os.close(write)
    child = os.read(read, 160)
    os.waitpid(pid, 0)
    os.close(read)
    parent = b"".join(new_id().bytes for _ in range(10))
    tails = lambda raw: {raw[n:n + 16][8:] for n in range(0, len(raw), 16)}  # noqa: E731  (the random half)
    assert len(child) == 160 and not tails(child) & tails(parent)
