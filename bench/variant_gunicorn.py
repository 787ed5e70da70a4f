"""gunicorn settings of the baselines: the real gunicorn.conf.py minus what a baseline lacks.

BENCH_VARIANT=floor serves bench.floor:app with the same server settings and no hooks (it has
no engine to dispose). BENCH_VARIANT=before serves the real app with the real hooks but no
budget guard, which would rightly refuse its unbounded pool.
"""

import os
import runpy
from pathlib import Path

REAL_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
DROPPED = {"floor": {"on_starting", "post_fork", "worker_exit"}, "before": {"on_starting"}}

variant = os.environ["BENCH_VARIANT"]
globals().update(
    {
        name: value
        for name, value in runpy.run_path(str(REAL_CONF)).items()
        if not name.startswith("_") and name not in DROPPED[variant]
    }
)
if variant == "floor":
    wsgi_app = "bench.floor:app"
