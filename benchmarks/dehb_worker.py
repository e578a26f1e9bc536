"""Ask/tell bridge to DEHB, run as a subprocess in a Python that has ``dehb`` installed.

``dehb`` 0.1.2 pins ``numpy<2``, so it usually lives in its own venv and the harness
(``run_lcbench.py``) talks to this script over JSON lines: one request on stdin,
one reply on stdout. A request with a ``space`` (re)starts the optimiser::

    {"space": {name: ["int" | "float", low, high, log]}, "seed": 0,
     "min_fidelity": 1, "max_fidelity": 52, "eta": 3}

then ``{"cmd": "ask"}`` -> ``{"config": {...}, "fidelity": f}``,
``{"cmd": "tell", "fitness": x, "cost": c}`` (for the last ask) -> ``{"ok": true}``,
``{"cmd": "incumbent"}`` -> ``{"config": {...} | null, "fitness": x}``, ``{"cmd": "quit"}``.
One worker thus serves many runs.
Every reply also carries ``"cpu"``, the worker's CPU seconds so far.
Only the standard library, ``ConfigSpace`` and ``dehb`` are imported.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any


def _plain(config: Any) -> dict[str, int | float]:
    """Turn a ConfigSpace configuration into a dict of built-in numbers."""
    return {k: (int(v) if isinstance(v, int) else float(v)) for k, v in dict(config).items()}


def main() -> None:
    """Serve requests until ``quit`` or the end of stdin."""
    protocol = sys.stdout
    sys.stdout = sys.stderr  # DEHB's logger writes to stdout; keep the protocol clean.
    from ConfigSpace import ConfigurationSpace
    from ConfigSpace import Float
    from ConfigSpace import Integer
    from dehb import DEHB

    def reply(message: dict[str, Any]) -> None:
        protocol.write(json.dumps({**message, "cpu": time.process_time()}) + "\n")
        protocol.flush()

    with tempfile.TemporaryDirectory() as output_path:
        dehb: Any = None
        job: dict[str, Any] = {}
        for line in sys.stdin:
            request = json.loads(line)
            if "space" in request:
                space = ConfigurationSpace(seed=request["seed"])
                for name, (kind, low, high, log) in request["space"].items():
                    make = Integer if kind == "int" else Float
                    space.add(make(name, (low, high), log=log))
                dehb = DEHB(
                    cs=space,
                    min_fidelity=request["min_fidelity"],
                    max_fidelity=request["max_fidelity"],
                    eta=request["eta"],
                    n_workers=1,
                    seed=request["seed"],
                    output_path=output_path,
                    save_freq="end",
                    log_level="ERROR",
                )
                reply({"ok": True})
            elif request["cmd"] == "ask":
                job = dehb.ask()
                reply({"config": _plain(job["config"]), "fidelity": float(job["fidelity"])})
            elif request["cmd"] == "tell":
                dehb.tell(job, {"fitness": request["fitness"], "cost": request["cost"]})
                reply({"ok": True})
            elif request["cmd"] == "incumbent":
                if dehb.inc_config is None:
                    reply({"config": None, "fitness": None})
                else:
                    config, fitness = dehb.get_incumbents()
                    reply({"config": _plain(config), "fitness": float(fitness)})
            else:
                break


if __name__ == "__main__":
    main()
