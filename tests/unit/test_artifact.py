"""The deployed-artifact helpers: the ELF check of a layer, stripping that never changes a header, the intrinsics
the Lambda-faithful check resolves, and run.sh as Lambda Web Adapter starts it (on the build make lambda-check made)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from local.artifact import BOTOCORE_SERVICES, _read_elf, check_elf, default_build_dir, strip
from local.lambda_check import LambdaFunction, _resolve, namespace_ready, start_stream

ROOT = Path(__file__).resolve().parents[2]


def _elf(path: Path, machine: int, elf_class: int = 2) -> Path:
    """A minimal ELF header: magic, class, little-endian, version, then e_type and e_machine at 16 and 18."""
    header = b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9) + struct.pack("<HH", 3, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + bytes(44))
    return path


def test_elf_check_accepts_aarch64_cpython_313(tmp_path: Path):
    _elf(tmp_path / "python" / "pkg" / "_core.cpython-313-aarch64-linux-gnu.so", 183)
    _elf(tmp_path / "python" / "cryptography" / "_rust.abi3.so", 183)
    _elf(tmp_path / "python" / "pkg.libs" / "libffi-1234.so.8.1.0", 183)
    (tmp_path / "python" / "pkg" / "socket_helpers.py").write_text("")  # not a shared object despite ".so"
    assert check_elf(tmp_path, "arm64") == ([], 3)


def test_elf_check_names_wrong_machines_and_tags(tmp_path: Path):
    _elf(tmp_path / "a" / "_x86.cpython-313-x86_64-linux-gnu.so", 62)  # an x86_64 wheel in an arm64 layer
    _elf(tmp_path / "a" / "_old.cpython-312-aarch64-linux-gnu.so", 183)  # built for another CPython
    _elf(tmp_path / "a" / "_32bit.so", 183, elf_class=1)
    (tmp_path / "a" / "broken.so").write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))  # Mach-O
    problems, checked = check_elf(tmp_path, "arm64")
    assert checked == 3
    joined = "\n".join(problems)
    assert "_x86.cpython-313-x86_64-linux-gnu.so: ELF class/data/machine (2, 1, 62)" in joined
    assert "expected cpython-313-aarch64-linux-gnu" in joined and "_old.cpython-312" in joined
    assert "_32bit.so: ELF class/data/machine (1, 1, 183)" in joined
    assert "broken.so: not an ELF file" in joined  # a macOS wheel's .so (Mach-O) would land here
    assert check_elf(tmp_path / "a", "x86_64")[0]  # the aarch64 ones are wrong there


def test_elf_check_of_an_empty_directory_fails(tmp_path: Path):
    assert check_elf(tmp_path)[0] == [f"{tmp_path}: no shared objects found (is this a built layer?)"]


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to make a real shared object")
def test_strip_keeps_the_header_and_shrinks(tmp_path: Path):
    source = tmp_path / "x.c"
    source.write_text("int answer(void) { return 42; }\n")
    lib = tmp_path / "libx.so"
    subprocess.run(["cc", "-g", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    before, header = lib.stat().st_size, _read_elf(lib)
    assert strip(lib) is True
    assert lib.stat().st_size < before and _read_elf(lib) == header


def test_intrinsics_of_function_variables():
    refs = {"AWS::StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/abc-123", "Table": "t", "Mode": "keys"}
    conditions = {"IsKeys": {"Fn::Equals": [{"Ref": "Mode"}, "keys"]}}
    usage = {"Fn::Join": ["", ["usage-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]}
    assert _resolve(usage, refs, conditions) == "usage-abc-123"
    assert _resolve({"Fn::Sub": "${Table}-${x}"}, {**refs, "x": "y"}, conditions) == "t-y"
    assert _resolve({"Fn::Sub": ["${A}/${Table}", {"A": "a"}]}, refs, conditions) == "a/t"
    assert _resolve({"Fn::If": ["IsKeys", {"Ref": "Table"}, "no"]}, refs, conditions) == "t"
    assert _resolve([{"Ref": "AWS::NoValue"}, "kept"], refs, conditions) == ["kept"]


BUILD = default_build_dir("x86_64")


@pytest.mark.skipif(
    not (BUILD / "template.yaml").is_file() or namespace_ready() is not None,
    reason="needs the x86_64 build make lambda-check makes, and a private mount namespace",
)
def test_run_sh_without_the_layer_on_pythonpath_cannot_start(tmp_path: Path):
    """The run.sh this project shipped before: Lambda Web Adapter execs it directly, the Python runtime's bootstrap
    never runs, so nothing puts /opt/python on sys.path and uvicorn (only in the layer) is not found."""
    build = tmp_path / "build"
    shutil.copytree(BUILD / "StreamFunction", build / "StreamFunction")
    (build / "StreamFunction" / "run.sh").write_text(
        '#!/bin/bash\nexec python -m uvicorn --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" --no-access-log app:app\n'
    )
    fn = LambdaFunction("StreamFunction", "stream", build / "StreamFunction", "run.sh", {}, 1024, 900)
    stream = start_stream(fn, (BUILD / "EngineLayer").resolve(), "http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="No module named uvicorn"):
        stream.wait_ready(timeout=60)
    stream.stop()


def test_the_layer_keeps_the_model_of_every_aws_service_the_engine_calls():
    """The build drops botocore's models of other services, so a client of a service missing from the list would
    fail on Lambda only (UnknownServiceError): every ``client("<service>")`` in the engine must be listed."""
    import botocore

    called = set()
    for path in (ROOT / "layers" / "engine" / "engine").rglob("*.py"):
        called |= set(re.findall(r"""client\(\s*["']([a-z0-9-]+)["']""", path.read_text()))
    # Powertools utilities the engine uses make their own clients: Parameters (get_secret) and Idempotency
    called |= {"secretsmanager", "dynamodb"}
    assert {"dynamodb", "s3", "stepfunctions", "bedrock-runtime"} <= called  # the scan found the clients
    assert called <= BOTOCORE_SERVICES, f"not kept in the layer: {sorted(called - BOTOCORE_SERVICES)}"
    models = Path(botocore.__file__).parent / "data"
    assert {p.name for p in models.iterdir() if p.is_dir()} >= BOTOCORE_SERVICES  # no misspelt service
