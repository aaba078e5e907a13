"""TensorFlow's view of the machine: its GPUs and CUDA/cuDNN build against the NVIDIA driver
where a GPU exists, oneDNN on CPU.

TensorFlow is imported in a child process with a timeout: the doctor stays light (a cold
import costs seconds), and a TensorFlow that hangs or crashes on import is a reported problem,
not a dead doctor.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from loopline.doctor.results import CheckResult, ok, problem, skipped

MARKER = "LOOPLINE_DOCTOR_TF "
PROBE = f"""
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
try:  # private, but the one place that says whether oneDNN is on in this process
    from tensorflow.python.util import _pywrap_util_port
    onednn = bool(_pywrap_util_port.IsMklEnabled())
except Exception:
    onednn = None
info = dict(tf.sysconfig.get_build_info())
print({MARKER!r} + json.dumps({{
    "version": tf.__version__,
    "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
    "cuda_build": bool(info.get("is_cuda_build")),
    "cuda_version": info.get("cuda_version"),
    "cudnn_version": info.get("cudnn_version"),
    "onednn": onednn,
}}))
"""
CUDA_WHEELS = "pip install 'tensorflow[and-cuda]=={version}' (NVIDIA's CUDA and cuDNN as wheels)"
DRIVER_LINE = re.compile(r"Driver Version:\s*(?P<driver>[\d.]+)\s+CUDA Version:\s*(?P<cuda>[\d.]+)")


@dataclass(frozen=True)
class TensorFlowView:
    version: str
    gpus: tuple[str, ...]
    cuda_build: bool
    cuda_version: str | None
    cudnn_version: str | None
    onednn: bool | None  # None: this TensorFlow does not say


@dataclass(frozen=True)
class NvidiaDriver:
    gpus: tuple[str, ...]  # `nvidia-smi -L` lines
    driver_version: str
    cuda_version: str  # the newest CUDA the driver runs


def parse_probe(stdout: str) -> TensorFlowView | None:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            found = json.loads(line[len(MARKER) :])
            return TensorFlowView(
                version=found["version"],
                gpus=tuple(found["gpus"]),
                cuda_build=found["cuda_build"],
                cuda_version=found["cuda_version"],
                cudnn_version=found["cudnn_version"],
                onednn=found["onednn"],
            )
    return None


def parse_nvidia_smi(listing: str, summary: str) -> NvidiaDriver | None:
    """The GPUs `nvidia-smi -L` lists and the driver (and its CUDA) plain `nvidia-smi` names;
    None when no GPU is listed."""
    gpus = tuple(line.strip() for line in listing.splitlines() if line.startswith("GPU "))
    match = DRIVER_LINE.search(summary)
    if not gpus or not match:
        return None
    return NvidiaDriver(gpus, match["driver"], match["cuda"])


def _major_minor(version: str) -> tuple[int, int]:
    major, minor, *_ = [int(p) for p in re.findall(r"\d+", version)[:2]] + [0, 0]
    return major, minor


def judge_gpu(view: TensorFlowView, driver: NvidiaDriver) -> CheckResult:
    """TensorFlow on a machine with a GPU: it must see the GPU, and its CUDA build must run on
    the driver (CUDA's minor-version compatibility: a driver of the same major version runs
    a newer minor release's code)."""
    build = f"CUDA {view.cuda_version}, cuDNN {view.cudnn_version}"
    where = f"driver {driver.driver_version} (CUDA {driver.cuda_version})"
    if not view.cuda_build:
        return problem(
            "gpu",
            f"{driver.gpus[0]} present, but TensorFlow {view.version} is not a CUDA build",
            CUDA_WHEELS.format(version=view.version),
        )
    built = _major_minor(view.cuda_version or "0")
    runs = _major_minor(driver.cuda_version)
    if built[0] > runs[0]:
        return problem(
            "gpu",
            f"TensorFlow {view.version} was built for {build}; the {where} runs CUDA "
            f"{runs[0]}.x at most",
            f"update the NVIDIA driver to one that runs CUDA {view.cuda_version} "
            f"(nvidia-smi's 'CUDA Version' {built[0]}.{built[1]} or newer)",
        )
    if not view.gpus:
        return problem(
            "gpu",
            f"nvidia-smi lists {len(driver.gpus)} GPU(s) ({where}), TensorFlow "
            f"{view.version} ({build}) sees none: its CUDA/cuDNN libraries are missing or do "
            "not load",
            CUDA_WHEELS.format(version=view.version)
            + "; check LD_LIBRARY_PATH holds no other CUDA",
        )
    note = " (minor-version compatibility)" if built > runs else ""
    return ok(
        "gpu",
        f"TensorFlow {view.version} sees {len(view.gpus)} GPU(s); built for {build}, {where}{note}",
    )


def judge_cpu(view: TensorFlowView, environ: Mapping[str, str]) -> CheckResult:
    """TensorFlow on CPU: oneDNN's kernels should be on (TensorFlow turns them on by default
    on x86; TF_ENABLE_ONEDNN_OPTS=0 turns them off)."""
    setting = environ.get("TF_ENABLE_ONEDNN_OPTS")
    shown = f"TF_ENABLE_ONEDNN_OPTS={setting}" if setting is not None else "the default"
    if view.onednn is None:
        return skipped("onednn", f"TensorFlow {view.version} does not say whether oneDNN is on")
    if not view.onednn:
        return problem(
            "onednn",
            f"oneDNN is off on CPU ({shown}): training runs without its kernels",
            "unset TF_ENABLE_ONEDNN_OPTS (or set it to 1); keep 0 only when results must be "
            "bit-identical across CPUs",
        )
    return ok("onednn", f"oneDNN is on for CPU training ({shown})")


def probe_tensorflow(environ: Mapping[str, str], timeout: float) -> TensorFlowView | CheckResult:
    """TensorFlow's own account, from a child process; a problem when it cannot give one."""
    fix = "make install (reinstalls TensorFlow from requirements.lock)"
    try:
        run = subprocess.run(
            [sys.executable, "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(environ),
        )
    except subprocess.TimeoutExpired:
        return problem("tensorflow", f"import tensorflow took over {timeout:g}s", fix)
    view = parse_probe(run.stdout) if run.returncode == 0 else None
    if view is None:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return problem(
            "tensorflow", f"import tensorflow failed (exit {run.returncode}): {last[:300]}", fix
        )
    return view


def nvidia_driver(timeout: float) -> NvidiaDriver | CheckResult | None:
    """The driver and GPUs, None when there is no nvidia-smi or it lists no GPU; a problem
    when nvidia-smi is there and fails (a driver/library mismatch after an update)."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=timeout
        )
        if listing.returncode != 0 or "GPU " not in listing.stdout:
            failed = (listing.stdout + listing.stderr).strip()
            if "NVIDIA-SMI has failed" in failed or "Failed to initialize" in failed:
                return problem(
                    "gpu",
                    f"nvidia-smi fails: {failed.splitlines()[0][:200]}",
                    "reload the NVIDIA kernel module or reboot, so the driver matches its "
                    "library (after a driver update)",
                )
            return None
        summary = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(listing.stdout, summary.stdout)


def check_tensorflow(environ: Mapping[str, str], timeout: float) -> list[CheckResult]:
    found = probe_tensorflow(environ, timeout)
    if isinstance(found, CheckResult):
        return [
            found,
            skipped("gpu", "TensorFlow did not import"),
            skipped("onednn", "TensorFlow did not import"),
        ]
    view = found
    results = [ok("tensorflow", f"TensorFlow {view.version} imports")]
    driver = nvidia_driver(timeout=min(timeout, 20))
    if isinstance(driver, CheckResult):
        return [*results, driver, skipped("onednn", "a GPU machine: oneDNN matters on CPU")]
    if driver is None:
        no_gpu = "no GPU (nvidia-smi lists none): TensorFlow trains on CPU"
        return [*results, skipped("gpu", no_gpu), judge_cpu(view, environ)]
    return [*results, judge_gpu(view, driver), skipped("onednn", "GPU machine: not used")]
