"""Package hygiene: the engine's public facade, and what each handler costs to import in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from local.template import load_template

ROOT = Path(__file__).resolve().parents[1]


def test_engine_all_is_sorted_and_complete():
    public = {name for name in dir(engine) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(engine, name)).__name__ == "module"}
    assert engine.__all__ == sorted(engine.__all__)
    assert set(engine.__all__) == public - modules - {"annotations"}


_PROBE = """
import importlib.util, json, resource, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"mcp", "openai", "moto", "aiohttp", "starlette"})
print(json.dumps({"ms": elapsed * 1000, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "heavy": heavy}))
"""


def _functions() -> dict[str, Path]:
    """The file each function of template.yaml imports first (API handlers, the streaming app, the worker)."""
    out: dict[str, Path] = {}
    for fn in load_template().functions.values():
        module = fn.asgi_target()[0] if fn.streams else fn.handler.rsplit(".", 1)[0]
        out[fn.code_dir.name] = fn.code_dir / f"{module.replace('.', '/')}.py"
    return out


@pytest.mark.parametrize("name", sorted(_functions()))
def test_handlers_import_only_what_they_need(name: str):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "engine"), "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(_functions()[name])], env=env, capture_output=True, text=True, check=True
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    # mcp/openai/moto never load in a handler; only the streaming function needs aiohttp and starlette
    expected = ["starlette"] if name == "stream" else []
    assert probe["heavy"] == expected, probe
