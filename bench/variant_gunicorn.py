"""gunicorn settings of the baselines: the real gunicorn.conf.py minus what a baseline lacks.

BENCH_VARIANT=floor serves bench.floor:app, BENCH_VARIANT=pony TechEmpower's Flask entry
(bench.techempower:app), BENCH_VARIANT=plain plain Flask-SQLAlchemy
(bench.plain_flask_sqlalchemy:app) and BENCH_VARIANT=plain-autocommit the same reading in
autocommit, with the same server settings and none of the hooks
(they have no engine or metrics). BENCH_VARIANT=before serves the real app with the real
hooks but no budget guard, which would rightly refuse its unbounded pool.
"""

import os
import runpy
from pathlib import Path

REAL_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
BASELINE_APPS = {
    "floor": "bench.floor:app",
    "pony": "bench.techempower:app",
    "plain": "bench.plain_flask_sqlalchemy:app",
    "plain-autocommit": "bench.plain_flask_sqlalchemy:create_app(reads_in_autocommit=True)",
}


def kept(name: str, value) -> bool:
    """Whether the baseline keeps this name of the real config."""
    if name.startswith("_") or name == "on_starting":
        return False
    return variant not in BASELINE_APPS or not callable(value)


variant = os.environ["BENCH_VARIANT"]
globals().update({name: v for name, v in runpy.run_path(str(REAL_CONF)).items() if kept(name, v)})
if variant in BASELINE_APPS:
    wsgi_app = BASELINE_APPS[variant]
