"""A web and a worker process take what they built at startup out of the garbage collector's walk
(``platform/heap.py``): without it each full collection walked ~250,000 startup objects, a 120-160 ms stall
of every request in flight. Each is checked in a fresh interpreter, as the process starts in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LOADERS = {
    "web": "from backoffice.web.entry.runtime import app_from_env\napp_from_env()",
    "worker": "import backoffice.web.entry.worker",
}
REPORT = "import gc, json\n{load}\nprint(json.dumps({{'frozen': gc.get_freeze_count(), 'walked': len(gc.get_objects())}}))"


@pytest.mark.parametrize("process", sorted(LOADERS))
def test_the_startup_objects_are_frozen_and_a_collection_walks_almost_nothing(process, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
    env["BACKOFFICE_DATA_DIR"] = str(tmp_path)  # the embedded defaults: nothing else is needed to start
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", REPORT.format(load=LOADERS[process])],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["frozen"] > 100_000  # the modules, routes, schemas, mappers and templates
    assert counts["walked"] < counts["frozen"] / 20
