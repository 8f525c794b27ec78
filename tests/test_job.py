"""The process around a run (lazytrain.job): what it changes in the process, and only that."""

from __future__ import annotations

import os

import pytest
import torch

from lazytrain.job import no_gpu_probe_per_step


def test_no_gpu_probe_per_step_only_where_there_is_no_gpu(monkeypatch):
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning sets it
    gpu = torch.cuda.is_available()
    no_gpu_probe_per_step()
    assert ("PYTORCH_NVML_BASED_CUDA_CHECK" in os.environ) == gpu  # kept on a GPU machine
    assert torch.cuda.is_available() == gpu  # the answer is the same, only cheaper
    if gpu:
        pytest.skip("a GPU is visible: the NVML check stays")
    assert torch.accelerator.current_accelerator(check_available=True) is None
