"""The GPU image's lock is the CPU lock plus TensorFlow's CUDA wheels, at versions TensorFlow
asks for: a GPU image that trains with other packages than the tested ones, or with CUDA
libraries TensorFlow was not built against, would fail only on a GPU machine."""

from __future__ import annotations

from importlib.metadata import requires

from loopline.doctor.packages import parse_lock
from packaging.requirements import Requirement
from support.paths import PROJECT_ROOT


def pins(name: str) -> dict[str, str]:
    text = (PROJECT_ROOT / name).read_text()
    return {package.name: package.version for package in parse_lock(text)}


def test_the_gpu_lock_is_the_cpu_lock_plus_cuda_wheels_only() -> None:
    cpu, gpu = pins("requirements.lock"), pins("requirements-gpu.lock")
    assert {name: gpu[name] for name in cpu if name in gpu} == cpu  # nothing else moved
    added = set(gpu) - set(cpu)
    assert added and all(name.startswith("nvidia-") for name in added), sorted(added)


def test_each_cuda_wheel_is_a_version_tensorflow_asks_for() -> None:
    gpu = pins("requirements-gpu.lock")
    wanted = [
        Requirement(text) for text in requires("tensorflow") or [] if 'extra == "and-cuda"' in text
    ]
    assert len(wanted) >= 10  # cublas, cudnn, cufft, ... (TensorFlow 2.21's "and-cuda")
    wrong = [f"{r.name}=={gpu.get(r.name)} (wants {r.specifier})" for r in wanted
             if r.name not in gpu or gpu[r.name] not in r.specifier]  # fmt: skip
    assert wrong == []
