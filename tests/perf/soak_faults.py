"""The fault soak: the fault suite's scenario at 10,000 events with three rounds of faults. Prints the
figures and writes them as JSON; exits 1 when an assertion of the suite fails (the failures are printed).

    .venv/bin/python -m tests.perf.soak_faults                 # ~10,000 events at 40/s, 3 fault rounds
    .venv/bin/python -m tests.perf.soak_faults --scale 3       # smaller

Everything runs on a private PostgreSQL cluster and Redis on free ports (tests/faults/cluster.py), so it
never touches the machine's own services. Figures go in tests/perf/README.md ("Faults").
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from backoffice.web.entry.wiring import compose
from tests.faults.scenario import run_scenario

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "perf" / "results"

SCALE_10K = 9.16  # STORIES at scale 1 make 1,092 events


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=SCALE_10K)
    parser.add_argument("--rate", type=float, default=40.0, help="events sent per second")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the five faults")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--drain", type=float, default=300.0, help="seconds allowed after the load")
    args = parser.parse_args()
    # The scenario's setup creates connectors in this process: the registries are filled by the composition
    # root, as tests/conftest.py does for the suite.
    compose()
    failures, figures, _ = run_scenario(scale=args.scale, rate=args.rate, seed=args.seed, fault_rounds=args.rounds,
                                        drain_timeout=args.drain)
    print(f"\nfault soak (scale {args.scale}, {args.rate}/s, {args.rounds} rounds of faults):\n{figures.text()}")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures), file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"faults-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "figures": figures.values,
                               "failures": [f.splitlines()[0][:2000] for f in failures]}, indent=2, default=str))
    print(f"written {out.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
