"""The deployed artifact: ``sam build`` for an architecture, finished the way Lambda should load it, and checked.

``make build`` (arm64, into ``.aws-sam/build``, what ``sam deploy`` uploads) and ``make lambda-check`` (also an
x86_64 build, to run on this machine) both come through :func:`build`:

1. ``sam build --parameter-overrides Architecture=<arch>``: the template's ``Architecture`` parameter sets every
   function's ``Architectures`` and the engine layer's ``BuildArchitecture``, so pip fetches manylinux wheels for
   that architecture (no container needed: every dependency ships wheels).
2. :func:`finish` drops the dependencies' test suites (``*/tests``, never imported at run time) and botocore's
   models of the AWS services the engine never calls (:data:`BOTOCORE_SERVICES` lists the kept ones), then precompiles
   the layer and the functions' code (``compileall``, **unchecked-hash** ``.pyc``, with the deployed paths
   ``/opt`` and ``/var/task`` as the code's file names, so tracebacks show source lines). ``/opt``
   and ``/var/task`` are read-only on Lambda: without ``.pyc`` every cold start compiles the whole engine and then
   throws the bytecode away. Unchecked-hash ``.pyc`` are used without comparing the source's timestamp or hash
   (the zip's timestamps are not kept anyway); nothing changes the sources after the build.
3. It strips the shared objects' debug information and unneeded symbols (``--strip-unneeded`` keeps the dynamic
   symbol table that ``dlopen`` needs). An aarch64 object needs a strip that knows aarch64: ``llvm-strip`` (any
   target), else the host's ``strip`` only for objects of the host's machine. The ELF header is compared before
   and after, and a file whose header changed is restored.
4. The build is skipped when a stamp of its inputs (template, function and layer sources, requirements, SAM CLI
   pins, this file) matches: ``make test`` rebuilds only after a change.

:func:`check_elf` reads the ELF header of every shared object in a layer: all must be 64-bit objects for the
wanted machine, and any CPython extension tag must be ``cpython-313-<machine>-linux-gnu`` (or the stable ABI,
``abi3``). pip can put a wrong-architecture wheel in a layer without any error (a pure-Python fallback, a missing
``--platform``); Lambda then fails at import time only.

What the runtime already provides (boto3, botocore, s3transfer, jmespath, dateutil, six, urllib3 in the python3.13
runtime) stays in the layer: the layer is first on ``sys.path``, so the pinned versions the tests ran are the ones
that run; dropping them would save ~33 MB unzipped but no init time (the same modules are imported either way),
and would leave the AWS SDK version to whatever the runtime ships that week. Only botocore's models of services
no function calls go (~26 MB unzipped and zipped: they are gzipped JSON), which changes nothing at run time.

CLI: ``python -m local.artifact build [--arch arm64] [--build-dir DIR]``, ``python -m local.artifact elf-check``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["BOTOCORE_SERVICES", "Architecture", "BuildResult", "build", "check_elf", "finish", "layer_size"]

ROOT = Path(__file__).resolve().parent.parent
SAM = ROOT / ".cache" / "sam" / "bin" / "sam"
LAYER = "EngineLayer"
DEPLOY_BUILD_DIR = ROOT / ".aws-sam" / "build"
PYTHON_TAG = "cpython-313"
# botocore ships the models of ~440 services (28 MB); the layer keeps those the engine makes clients for
# (engine.storage, engine.retrieval, engine.providers.bedrock, Powertools Parameters and Idempotency, the key CLI),
# and the SDK's own credential services. tests/unit/test_artifact.py fails on a client of a service not listed.
BOTOCORE_SERVICES = frozenset(
    {
        "apigateway",
        "apigatewaymanagementapi",
        "bedrock-runtime",
        "dynamodb",
        "lambda",
        "s3",
        "s3vectors",
        "secretsmanager",
        "ssm",
        "stepfunctions",
        "sso",
        "sso-oidc",
        "sts",
    }
)

Architecture = Literal["arm64", "x86_64"]
# ELF e_machine values (the ELF specification's EM_* constants) and the machine name in extension file names.
ELF_MACHINE = {"arm64": (183, "aarch64"), "x86_64": (62, "x86_64")}
_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")
_INPUTS = ("template.yaml", "functions", "layers/engine", "shared/statemachine", "local/sam-requirements.txt")


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Where a build is, and what finishing it did."""

    arch: Architecture
    build_dir: Path
    rebuilt: bool
    seconds: float
    pyc_files: int = 0
    stripped: int = 0
    strip_skipped: int = 0

    @property
    def template(self) -> Path:
        return self.build_dir / "template.yaml"

    @property
    def layer_dir(self) -> Path:
        return self.build_dir / LAYER


def default_build_dir(arch: Architecture) -> Path:
    """``make build``'s directory for arm64 (what ``sam deploy`` reads); a directory of its own otherwise."""
    return DEPLOY_BUILD_DIR if arch == "arm64" else ROOT / ".aws-sam" / "lambda-check" / arch


def inputs_digest(arch: Architecture) -> str:
    """SHA-256 over the build's inputs (paths and contents), the architecture and this module."""
    digest = hashlib.sha256(f"{arch}\n".encode())
    files = [Path(__file__)]
    for name in _INPUTS:
        path = ROOT / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _python313() -> Path:
    """The directory of a python3.13 for ``sam build``'s runtime check (this interpreter when it is 3.13)."""
    if sys.version_info[:2] != (3, 13):
        raise RuntimeError("the build needs Python 3.13 (the Lambda runtime's version) to precompile the layer")
    return Path(sys.executable).resolve().parent


def build(arch: Architecture = "arm64", build_dir: Path | None = None, *, force: bool = False) -> BuildResult:
    """``sam build`` for ``arch`` into ``build_dir``, then :func:`finish`; skipped when the inputs are unchanged."""
    build_dir = (build_dir or default_build_dir(arch)).resolve()
    stamp = build_dir / ".inputs-sha256"
    digest = inputs_digest(arch)
    started = time.monotonic()
    built = stamp.is_file() and stamp.read_text().strip() == digest and (build_dir / "template.yaml").is_file()
    if built and not force:
        return BuildResult(arch, build_dir, False, time.monotonic() - started)
    if not SAM.is_file():
        raise RuntimeError(f"{SAM.relative_to(ROOT)} is missing: run make .cache/sam/.synced")
    cache_dir = ROOT / ".aws-sam" / "cache" / arch
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{_python313()}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PYTHONPATH", None)  # the build must see only what requirements.txt installs
    stamp.unlink(missing_ok=True)
    command = [
        str(SAM),
        "build",
        "--parameter-overrides",
        f"Architecture={arch}",
        "--build-dir",
        str(build_dir),
        "--cached",
        "--cache-dir",
        str(cache_dir),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"sam build ({arch}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    as_built = layer_size(build_dir / LAYER)
    pyc, stripped, skipped = finish(build_dir)
    sizes = {"as_built": as_built, "as_deployed": layer_size(build_dir / LAYER)}
    (build_dir / ".layer-size.json").write_text(json.dumps(sizes) + "\n")
    stamp.write_text(digest + "\n")
    return BuildResult(arch, build_dir, True, time.monotonic() - started, pyc, stripped, skipped)


def finish(build_dir: Path) -> tuple[int, int, int]:
    """Drop the dependencies' test suites, precompile every package and function, strip the shared objects.

    Returns ``(.pyc files written, objects stripped, objects left unstripped for want of a suitable strip)``.
    """
    # Dependencies' own test suites (numpy's are ~15 MB) are never imported at run time; the engine has none.
    for tests in sorted((build_dir / LAYER / "python").glob("*/**/tests")):
        if tests.is_dir() and tests.relative_to(build_dir / LAYER / "python").parts[0] != "engine":
            shutil.rmtree(tests, ignore_errors=True)
    # The models of AWS services the engine never calls (botocore loads a model only when a client is made).
    models = build_dir / LAYER / "python" / "botocore" / "data"
    for service in sorted(models.iterdir()) if models.is_dir() else []:
        if service.is_dir() and service.name not in BOTOCORE_SERVICES:
            shutil.rmtree(service)
    compiled = 0
    targets = [(build_dir / LAYER, "/opt")]
    targets += [(d, "/var/task") for d in sorted(build_dir.iterdir()) if d.is_dir() and d.name != LAYER]
    for directory, deployed in targets:
        before = sum(1 for _ in directory.rglob("*.pyc"))
        command = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
        command += ["-s", str(directory), "-p", deployed, str(directory)]
        # A file that does not compile (a template for another Python, a test fixture) is not ours to fix: the
        # runtime would skip its .pyc the same way, so a non-zero exit is not a build failure.
        subprocess.run(command, check=False, capture_output=True)
        compiled += sum(1 for _ in directory.rglob("*.pyc")) - before
    stripped = skipped = 0
    for path in shared_objects(build_dir / LAYER):
        if not path.is_symlink() and _read_elf(path) is not None:
            if strip(path):
                stripped += 1
            else:
                skipped += 1
    return compiled, stripped, skipped


def shared_objects(directory: Path) -> list[Path]:
    """Every regular file under ``directory`` named like a shared object (``x.so``, ``libx.so.1.2``)."""
    return [p for p in sorted(directory.rglob("*.so*")) if _SHARED_OBJECT.search(p.name) and p.is_file()]


def _strip_tools(machine: int) -> list[str]:
    host = ELF_MACHINE.get("arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64", (0, ""))[0]
    tools = [t for t in ("llvm-strip",) if shutil.which(t)]
    if machine == host and shutil.which("strip"):
        tools.append("strip")
    return tools


def strip(path: Path) -> bool:
    """Strip one shared object in place with a tool that knows its machine; False when there is none.

    The ELF header (class, byte order, machine) must be the same afterwards, or the original is put back.
    """
    header = _read_elf(path)
    if header is None:
        return False
    original = path.read_bytes()
    for tool in _strip_tools(header[2]):
        done = subprocess.run([tool, "--strip-unneeded", str(path)], capture_output=True)
        if done.returncode == 0 and _read_elf(path) == header:
            return True
        path.write_bytes(original)
    return False


def _read_elf(path: Path) -> tuple[int, int, int] | None:
    """``(class, data, e_machine)`` from an ELF header, or None for a file that is not ELF."""
    with path.open("rb") as file:
        head = file.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "<" if head[5] == 1 else ">"
    return head[4], head[5], int(struct.unpack(f"{order}H", head[18:20])[0])


def check_elf(layer_dir: Path, arch: Architecture = "arm64") -> tuple[list[str], int]:
    """Every shared object under ``layer_dir`` is a 64-bit little-endian ELF for ``arch``, and every CPython
    extension is tagged for CPython 3.13 on that machine. Returns (problems, objects checked)."""
    machine, name = ELF_MACHINE[arch]
    problems: list[str] = []
    checked = 0
    for path in shared_objects(layer_dir):
        header = _read_elf(path)
        where = path.relative_to(layer_dir)
        if header is None:
            problems.append(f"{where}: not an ELF file")
            continue
        checked += 1
        if header != (2, 1, machine):
            problems.append(f"{where}: ELF class/data/machine {header}, expected (2, 1, {machine}) ({name})")
        parts = path.name.split(".")
        tag = next((p for p in parts if p.startswith("cpython-") or p.startswith("cp3")), None)
        if tag is not None and tag != f"{PYTHON_TAG}-{name}-linux-gnu":
            problems.append(f"{where}: extension tag {tag}, expected {PYTHON_TAG}-{name}-linux-gnu")
    if checked == 0:
        problems.append(f"{layer_dir}: no shared objects found (is this a built layer?)")
    return problems, checked


def layer_size(layer_dir: Path) -> tuple[int, int]:
    """``(unzipped bytes, zipped bytes)`` of a built layer, zipped as ``sam deploy`` does (deflate)."""
    files = sorted(p for p in layer_dir.rglob("*") if p.is_file())
    unzipped = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(layer_dir))
    return unzipped, len(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    """``build`` or ``elf-check``; exit status 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m local.artifact", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="sam build for an architecture, precompiled and stripped")
    build_cmd.add_argument("--arch", choices=list(ELF_MACHINE), default="arm64")
    build_cmd.add_argument("--build-dir", type=Path, default=None)
    build_cmd.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    elf = sub.add_parser("elf-check", help="every shared object of the arm64 layer is aarch64 for CPython 3.13")
    elf.add_argument("--build-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        result = build(args.arch, args.build_dir, force=args.force)
    else:
        result = build("arm64", args.build_dir)
    if result.rebuilt:
        print(
            f"[artifact] sam build {result.arch} -> {result.build_dir} in {result.seconds:.0f}s: "
            f"{result.pyc_files} .pyc, {result.stripped} shared objects stripped"
            + (f", {result.strip_skipped} left unstripped (no strip for their machine)" if result.strip_skipped else "")
        )
    else:
        print(f"[artifact] {result.build_dir}: inputs unchanged, build reused")
    recorded = result.build_dir / ".layer-size.json"
    sizes = json.loads(recorded.read_text()) if recorded.is_file() else {"as_deployed": layer_size(result.layer_dir)}
    for label, (unzipped, zipped) in sizes.items():
        what = label.replace("_", " ")
        print(f"[artifact] engine layer {what}: {unzipped / 2**20:.1f} MiB unzipped, {zipped / 2**20:.1f} MiB zipped")
    if args.command == "elf-check":
        problems, checked = check_elf(result.layer_dir, "arm64")
        for problem in problems:
            print(f"  - {problem}")
        print(f"[artifact] {checked} shared objects checked: {'FAILED' if problems else 'all aarch64, CPython 3.13'}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
