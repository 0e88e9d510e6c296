"""The MSRA R-50.pkl path: fetched with Detectron's published .md5sum and checked, unpickled safely,
converted to torchvision's names and loaded into both frameworks' trunks with the same function.

No copy of R-50.pkl can be downloaded here, so the tests write one in its real on-disk format: a
Python-2-compatible pickle (protocol 2) of a dict of float32 NumPy arrays under Detectron's Caffe2
names, every trunk blob of ResNet-50 plus the blobs a real file also holds (fc1000)."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch

# isort: split
import hashlib
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from harness.config import load_config
from harness.errors import ConfigError, DatasetError
from object_detection.maskrcnn import pretrained
from object_detection.maskrcnn.config import Config
from object_detection.maskrcnn.pytorch.model import build_backbone

REFERENCE = load_config(Config, "object_detection/maskrcnn/configs/reference.yaml")


def caffe2_blobs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """ResNet-50 in Detectron's names: conv weights OIHW, batch norm folded into _bn_s / _bn_b."""
    blobs = {"conv1_w": rng.normal(0, 0.1, (64, 3, 7, 7)), "res_conv1_bn_s": rng.uniform(0.5, 1.5, 64),
             "res_conv1_bn_b": rng.normal(0, 0.1, 64), "fc1000_w": rng.normal(0, 0.01, (1000, 2048)),
             "fc1000_b": np.zeros(1000)}
    in_channels = 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=2):
        for block in range(count):
            prefix = f"res{stage}_{block}_"
            shapes = {"branch2a": (width, in_channels, 1, 1), "branch2b": (width, width, 3, 3), "branch2c": (width * 4, width, 1, 1)}
            if block == 0:
                shapes["branch1"] = (width * 4, in_channels, 1, 1)
            for branch, shape in shapes.items():
                blobs[prefix + branch + "_w"] = rng.normal(0, 0.05, shape)
                blobs[prefix + branch + "_bn_s"] = rng.uniform(0.5, 1.5, shape[0])
                blobs[prefix + branch + "_bn_b"] = rng.normal(0, 0.1, shape[0])
            in_channels = width * 4
    return {key: value.astype(np.float32) for key, value in blobs.items()}


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    """A fake R-50.pkl and its Detectron-style .md5sum in a served folder."""
    folder = tmp_path_factory.mktemp("detectron")
    path = folder / "R-50.pkl"
    with open(path, "wb") as handle:
        pickle.dump(caffe2_blobs(np.random.default_rng(0)), handle, protocol=2)
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    (folder / "R-50.pkl.md5sum").write_text(f"{digest}  R-50.pkl\n")
    return path


def test_download_checks_the_published_md5(r50, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fetched = pretrained.r50_file("download", url=r50.as_uri(), progress=False)
    assert fetched == tmp_path / "torch" / "hub" / "checkpoints" / "R-50.pkl" and fetched.read_bytes() == r50.read_bytes()
    with open(fetched, "r+b") as handle:  # a corrupted cached copy is refused in one line
        handle.seek(1000)
        handle.write(b"\x00" * 8)
    with pytest.raises(DatasetError, match=r"md5 [0-9a-f]{32} differs from .* \(published at "):
        pretrained.r50_file("download", url=r50.as_uri(), progress=False)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"conv1_w": Exploit()}, protocol=2))
    with pytest.raises(DatasetError, match="is not allowed in a weights file"):
        pretrained.load_pickle(path)


def test_conversion_names_every_trunk_tensor(r50):
    state = pretrained.trunk_state_dict(str(r50), REFERENCE.model)
    torch_trunk = build_backbone(REFERENCE.model).body
    assert set(state) == set(torch_trunk.state_dict())  # strict: nothing missing, nothing extra (fc1000 dropped)
    blobs = pretrained.load_pickle(r50)
    np.testing.assert_array_equal(state["layer3.5.conv2.weight"], blobs["res4_5_branch2b_w"])
    np.testing.assert_array_equal(state["layer2.0.downsample.1.bias"], blobs["res3_0_branch1_bn_b"])
    np.testing.assert_array_equal(state["layer4.2.bn3.running_var"], np.ones(2048))


def test_a_reduced_trunk_refuses_the_resnet50_weights(r50):
    smoke = load_config(Config, "object_detection/maskrcnn/configs/smoke.yaml")
    with pytest.raises(ConfigError, match="pretrained_backbone"):
        pretrained.trunk_state_dict(str(r50), smoke.model)


def test_both_trunks_compute_the_msra_network(r50, float64_keras):
    """The converted weights give the same trunk in both frameworks (float64), and that trunk is MSRA's:
    its first layer is conv1 followed by the folded batch norm x * s + b (computed here by hand)."""
    from object_detection.maskrcnn.tensorflow import convert
    from object_detection.maskrcnn.tensorflow.model import build_model as build_keras

    state = pretrained.trunk_state_dict(str(r50), REFERENCE.model)
    torch_trunk = build_backbone(REFERENCE.model).body.double().eval()
    torch_trunk.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()})
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 50
    blobs = pretrained.load_pickle(r50)
    with torch.no_grad():
        stem = torch_trunk.bn1(torch_trunk.conv1(images))
        by_hand = torch.nn.functional.conv2d(images, torch.from_numpy(blobs["conv1_w"]).double(), stride=2, padding=3)
        by_hand = by_hand * torch.from_numpy(blobs["res_conv1_bn_s"]).double()[:, None, None] \
            + torch.from_numpy(blobs["res_conv1_bn_b"]).double()[:, None, None]
        torch_outputs = torch_trunk.layer4(torch_trunk.layer3(torch_trunk.layer2(torch_trunk.layer1(torch_trunk.maxpool(
            torch_trunk.relu(stem.clone()))))))
    np.testing.assert_allclose(stem.numpy(), by_hand.numpy(), rtol=1e-12, atol=1e-9)

    keras_model = build_keras(REFERENCE.model, 81)
    convert.load_torch_state_dict(keras_model, state, prefix="backbone.body.")
    keras_outputs = keras_model.backbone.body(tf.constant(images.permute(0, 2, 3, 1).numpy()))[-1].numpy()
    ours = torch_outputs.permute(0, 2, 3, 1).numpy()
    assert np.abs(ours).max() > 1 and np.abs(ours - keras_outputs).max() <= 1e-10 * np.abs(ours).max()
