"""hypops.info() and the `hypops info` command line."""

import json
import os
import subprocess
import sys

import torch
from hyptest import NATIVE_OPS

import hypops
from hypops import _backend

KEYS = {
    "hypops",
    "python",
    "torch",
    "torch_cuda",
    "triton",
    "build",
    "threads",
    "cpu_capability",
    "cuda_devices",
    "backend_requested",
    "backend_serving",
    "triton_interpret",
}


def test_info_keys_and_values():
    d = hypops.info()
    assert KEYS <= set(d), KEYS - set(d)
    assert d["hypops"] == hypops.__version__
    assert d["torch"] == torch.__version__
    assert d["threads"] == torch.get_num_threads()
    assert isinstance(d["build"], dict) and "extension" in d["build"]
    if d["build"]["extension"]:
        assert {"compiler", "openmp", "simd", "cuda"} <= set(d["build"])
        assert d["backend_serving"]["cpu"] == "native"
    else:
        assert "error" in d["build"]
        assert d["backend_serving"]["cpu"] == "torch"
    json.dumps(d)  # JSON-serialisable (the CLI's --json)


def test_info_reports_requested_backend():
    with hypops.use_backend("torch"):
        d = hypops.info()
    assert d["backend_requested"] == "torch"
    assert d["backend_serving"]["cpu"] == "torch"
    assert hypops.info()["backend_requested"] is None


def test_native_serves_its_ops():
    """The native backend serves every op it has kernels for (so the native half of the test matrix
    cannot silently turn into skips when the extension fails to build or load)."""
    assert _backend.native_error is None, _backend.native_error
    for op in NATIVE_OPS:
        assert _backend.reasons("native", op, torch.device("cpu")) == [], op
        assert _backend.choose(op, torch.device("cpu")) == "native", op
        assert hasattr(torch.ops.hypops, op) and hasattr(torch.ops.hypops, f"{op}_backward"), op


def _run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "hypops.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_info():
    r = _run_cli("info")
    assert r.returncode == 0, r.stderr
    assert "hypops" in r.stdout and hypops.__version__ in r.stdout
    assert "backend_serving" in r.stdout


def test_cli_info_json():
    r = _run_cli("info", "--json", env={"HYPOPS_BACKEND": "torch"})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert KEYS <= set(d)
    assert d["backend_requested"] == "torch" and d["backend_serving"]["cpu"] == "torch"


def test_cli_without_command_fails_cleanly(capsys):
    import pytest

    from hypops.cli import main

    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code != 0
    assert "usage" in capsys.readouterr().err.lower()


def test_cli_main_in_process(capsys):
    from hypops.cli import main

    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hypops"] == hypops.__version__
