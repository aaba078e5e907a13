"""TensorFlow's view against the NVIDIA driver, and oneDNN on CPU, from the probe's output."""

from __future__ import annotations

import json
from dataclasses import replace

from loopline.doctor.accelerators import (
    MARKER,
    NvidiaDriver,
    TensorFlowView,
    judge_cpu,
    judge_gpu,
    parse_nvidia_smi,
    parse_probe,
)
from loopline.doctor.results import Status

VIEW = TensorFlowView("2.21.0", ("/physical_device:GPU:0",), True, "12.5.1", "9", True)
H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0b1c)"
SUMMARY = "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |"


def test_the_probe_line_is_found_among_tensorflows_chatter() -> None:
    found = {
        "version": "2.21.0",
        "gpus": [],
        "cuda_build": True,
        "cuda_version": "12.5.1",
        "cudnn_version": "9",
        "onednn": True,
    }
    stdout = f"some warning\n{MARKER}{json.dumps(found)}\n"
    assert parse_probe(stdout) == replace(VIEW, gpus=())
    assert parse_probe("Traceback ...") is None


def test_nvidia_smi_gives_gpus_driver_and_its_cuda() -> None:
    assert parse_nvidia_smi(H100 + "\n", SUMMARY) == NvidiaDriver((H100,), "550.54.15", "12.4")
    assert parse_nvidia_smi("No devices were found\n", "") is None


def test_a_gpu_tensorflow_sees_on_a_new_enough_driver_is_ok() -> None:
    result = judge_gpu(VIEW, NvidiaDriver((H100,), "550.54.15", "12.4"))
    assert result.status is Status.OK
    assert "built for CUDA 12.5.1, cuDNN 9" in result.detail
    assert "(minor-version compatibility)" in result.detail  # 12.5 code on a 12.4 driver


def test_a_driver_of_an_older_cuda_major_is_a_problem_naming_the_driver_to_install() -> None:
    result = judge_gpu(VIEW, NvidiaDriver((H100,), "470.82", "11.4"))
    assert result.status is Status.PROBLEM
    assert "driver 470.82 (CUDA 11.4) runs CUDA 11.x at most" in result.detail
    assert "update the NVIDIA driver" in result.fix and "12.5" in result.fix


def test_a_gpu_tensorflow_does_not_see_is_a_problem_naming_the_cuda_wheels() -> None:
    result = judge_gpu(replace(VIEW, gpus=()), NvidiaDriver((H100,), "550.54.15", "12.4"))
    assert result.status is Status.PROBLEM and "sees none" in result.detail
    assert "tensorflow[and-cuda]==2.21.0" in result.fix


def test_a_tensorflow_without_cuda_on_a_gpu_machine_is_a_problem() -> None:
    result = judge_gpu(replace(VIEW, cuda_build=False), NvidiaDriver((H100,), "550", "12.4"))
    assert result.status is Status.PROBLEM and "not a CUDA build" in result.detail


def test_onednn_off_on_cpu_is_a_problem_naming_the_variable() -> None:
    off = judge_cpu(replace(VIEW, onednn=False), {"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert off.status is Status.PROBLEM
    assert "TF_ENABLE_ONEDNN_OPTS=0" in off.detail and "unset TF_ENABLE_ONEDNN_OPTS" in off.fix
    on = judge_cpu(VIEW, {})
    assert (on.status, on.detail) == (Status.OK, "oneDNN is on for CPU training (the default)")
    assert judge_cpu(replace(VIEW, onednn=None), {}).status is Status.SKIPPED
