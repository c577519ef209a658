"""What every benchmark's ``main`` does around its run: time it, turn a failure into JSON (a
benchmark that cannot run says why in its output), print the JSON and write it to a file."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Results = dict[str, Any]


def run_and_report(
    run: Callable[[], Results],
    *,
    on_error: Results,
    output: Path,
    finish: Callable[[Results], Results] = lambda results: results,
    name: str = "bench",
) -> int:
    """``run()``; on an exception ``on_error`` with the error added (exit status 1); then
    ``finish`` (e.g. targets, order), the total wall time, and the JSON out. Ctrl-C: 130."""
    started = time.monotonic()
    status = 0
    try:
        results = run()
    except KeyboardInterrupt:
        print(f"[{name}] interrupted; the lab has been removed", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:  # the lab or a peer could not be set up: say so in the JSON
        print(f"[{name}] failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        results = {**on_error, "error": f"{type(exc).__name__}: {exc}"}
        status = 1
    results = finish(results)
    results["total_wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(results, indent=2)
    print(text, flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    return status
