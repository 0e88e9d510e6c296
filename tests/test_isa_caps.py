"""The instruction-set caps of the numerics CI run (.ci/run) really change the kernels the libraries pick.

`ATEN_CPU_CAPABILITY` caps PyTorch's own vectorised kernels, `ONEDNN_MAX_CPU_ISA` the oneDNN
primitives of both PyTorch and TensorFlow (convolutions, matmuls), `MKL_ENABLE_INSTRUCTIONS` MKL's
BLAS (PyTorch's float GEMMs on x86). Without the caps in the environment there is nothing to check.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.numerics

CAPPED = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2"

PROBE = """
import sys
import torch
print("aten:", torch.backends.cpu.get_cpu_capability())
torch.nn.functional.conv2d(torch.randn(8, 64, 32, 32), torch.randn(64, 64, 3, 3), padding=1)  # oneDNN in PyTorch
import tensorflow as tf
tf.nn.conv2d(tf.random.normal([8, 32, 32, 64]), tf.random.normal([3, 3, 64, 64]), 1, "SAME")  # oneDNN in TF
"""


@pytest.mark.skipif(not CAPPED, reason="the ISA caps are not set (.ci/run sets them for its second run)")
def test_the_caps_select_avx2_kernels_in_both_frameworks():
    if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "avx2":
        import torch

        assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT")  # DEFAULT: a CPU without AVX2
    completed = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"}, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    isa = [line for line in (completed.stdout + completed.stderr).splitlines() if ",info,cpu,isa:" in line]
    assert len(isa) >= 1, completed.stdout[-2000:]  # PyTorch's oneDNN (TensorFlow's too where it uses oneDNN)
    assert all("AVX-512" not in line and "AMX" not in line for line in isa), isa
    kernels = [line for line in completed.stdout.splitlines() if ",exec,cpu,convolution," in line]
    assert kernels and all("avx512" not in line and "amx" not in line for line in kernels), kernels[:3]
