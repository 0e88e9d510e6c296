"""The reference's ImageNet weights of the trunk, MSRA's ResNet-50 (`R-50.pkl`): fetched, verified, converted.

The reference initializes its trunk from `catalog://ImageNetPretrained/MSRA/R-50`
(configs/e2e_mask_rcnn_R_50_FPN_1x.yaml), which maskrcnn-benchmark's paths_catalog.py resolves to
https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl: Detectron's Caffe2
conversion of He et al.'s original ResNet-50 (the stride in the 1x1 convolutions, batch norm
folded into a per-channel scale `_bn_s` and shift `_bn_b`). Detectron publishes each file's MD5
at the file's URL + `.md5sum` (detectron/utils/io.py, `_get_reference_md5sum`; Detectron's
MODEL_ZOO.md: "append .md5sum to the URL"): `r50_file("download")` fetches that checksum and the
file into torch.hub's cache (resumable), and refuses a file whose MD5 differs from it or from
`R50_MD5` below. `R50_MD5` is the value to record: no source reachable where this code was written
(no internet beyond package registries) states it, so it is empty, and until it is filled the
published `.md5sum` is the check; a run prints the verified MD5 so it can be recorded.

`trunk_state_dict` converts the pickle (a dict, or {"blobs": dict}, of NumPy arrays under Caffe2
names; Python 2 pickle, read as latin-1 by a restricted unpickler that builds only NumPy arrays)
to torchvision's ResNet names, as maskrcnn-benchmark's c2_model_loading.py maps them:

    conv1_w -> conv1.weight                   res_conv1_bn_{s,b} -> bn1.{weight,bias}
    res{2..5}_{i}_branch2{a,b,c}_w -> layer{1..4}.{i}.conv{1,2,3}.weight, _bn_{s,b} -> bn{1,2,3}.{weight,bias}
    res{2..5}_0_branch1_w -> layer{1..4}.0.downsample.0.weight, _bn_{s,b} -> downsample.1.{weight,bias}

with running_mean 0 and running_var 1 for every frozen batch norm (the folded scale and shift are
the whole affine map; eps is 0 in both models); fc1000 and any other blob is not the trunk's.
PyTorch loads the result into `backbone.body`, Keras through `tensorflow/convert.py`.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np

from harness.datasets import file_digest
from harness.download import download
from harness.errors import ConfigError, DatasetError
from harness.progress import info

R50_URL = "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"
R50_MD5_URL = R50_URL + ".md5sum"  # Detectron's published checksum of the file
R50_FILE = "R-50.pkl"
R50_MD5 = ""  # to be recorded from R50_MD5_URL (see the module docstring)
STAGES = {2: "layer1", 3: "layer2", 4: "layer3", 5: "layer4"}
BRANCH2 = {"a": "1", "b": "2", "c": "3"}
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray"),
            ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    """Builds NumPy arrays and dicts, nothing else: a weights file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def hub_checkpoint_dir() -> Path:
    """torch.hub's cache folder ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/...)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def published_md5(path: Path) -> str:
    """The MD5 in a Detectron `.md5sum` file (its first word)."""
    try:
        words = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not a readable checksum file ({error})") from None
    if not words or not re.fullmatch(r"[0-9a-f]{32}", words[0]):
        raise DatasetError(f"{path}: does not start with an MD5 (32 hex digits); download it again from {R50_MD5_URL}")
    return words[0]


def verify_r50(path: str | os.PathLike, expected_md5: str | None = None) -> Path:
    """The file's MD5 must equal the recorded one (`R50_MD5`, when recorded) and `expected_md5`
    (the published .md5sum, when given); DatasetError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (the MSRA ResNet-50 weights, {R50_URL})")
    digest = file_digest(path, "md5")
    for source, wanted in (("recorded in object_detection/maskrcnn/pretrained.py", R50_MD5),
                           (f"published at {R50_MD5_URL}", expected_md5)):
        if wanted and digest != wanted:
            raise DatasetError(f"{path}: md5 {digest} differs from {wanted} ({source}); download it again")
    info(f"{path}: md5 {digest}")
    return path


def r50_file(setting: str, *, url: str = R50_URL, progress: bool = True) -> Path:
    """The verified weights file for `model.pretrained_backbone` = a path or `download`."""
    if setting != "download":
        return verify_r50(setting)
    folder = hub_checkpoint_dir()
    checksum = folder / (R50_FILE + ".md5sum")
    if not checksum.is_file():
        download(url + ".md5sum", checksum, progress=False)
    target = folder / R50_FILE
    if not target.is_file():
        info(f"downloading {url} to {target}")
        download(url, target, progress=progress)
    return verify_r50(target, published_md5(checksum))


def load_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The blobs of a Detectron weights pickle (Python 2, latin-1), arrays only."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = _ArraysOnly(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as error:
        raise DatasetError(f"{path}: not a Detectron weights pickle ({error})") from None
    if isinstance(data, dict) and "blobs" in data:
        data = data["blobs"]
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: not a Detectron weights pickle (a {type(data).__name__}, not a dict of arrays)")
    return {str(key): value for key, value in data.items() if isinstance(value, np.ndarray)}


def torchvision_name(c2_name: str) -> str | None:
    """The torchvision ResNet name of a Caffe2 blob, or None for a blob that is not the trunk's."""
    if c2_name == "conv1_w":
        return "conv1.weight"
    if c2_name in ("res_conv1_bn_s", "res_conv1_bn_b"):
        return "bn1." + ("weight" if c2_name.endswith("_s") else "bias")
    found = re.fullmatch(r"res([2-5])_(\d+)_branch(1|2[abc])(_w|_bn_s|_bn_b)", c2_name)
    if not found:
        return None
    stage, block, branch, kind = found.groups()
    prefix = f"{STAGES[int(stage)]}.{block}."
    if branch == "1":
        prefix += "downsample." + ("0" if kind == "_w" else "1")
    else:
        prefix += ("conv" if kind == "_w" else "bn") + BRANCH2[branch[1]]
    return prefix + {"_w": ".weight", "_bn_s": ".weight", "_bn_b": ".bias"}[kind]


def convert_blobs(blobs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Caffe2 blobs -> torchvision-named float32 arrays, with the frozen batch norms' statistics."""
    state = {}
    for c2_name, value in blobs.items():
        name = torchvision_name(c2_name)
        if name is not None:
            state[name] = np.asarray(value, dtype=np.float32)
    for name in [key for key in state if key.endswith(".bias") and "conv" not in key]:
        channels = state[name].shape
        base = name[: -len(".bias")]
        state[base + ".running_mean"] = np.zeros(channels, np.float32)
        state[base + ".running_var"] = np.ones(channels, np.float32)
    return state


def trunk_state_dict(setting: str, cfg_model) -> dict[str, np.ndarray] | None:
    """The trunk's ImageNet weights under torchvision's names, or None for random weights (setting "")."""
    if not setting:
        return None
    if (cfg_model.stem_width, tuple(cfg_model.widths), tuple(cfg_model.blocks), cfg_model.norm) != \
            (64, (64, 128, 256, 512), (3, 4, 6, 3), "frozen"):
        raise ConfigError(f"model.pretrained_backbone={setting!r} holds ResNet-50 weights (frozen batch norm), but the "
                          "model's trunk is reduced (set model.pretrained_backbone='' for random weights)")
    path = r50_file(setting)
    state = convert_blobs(load_pickle(path))
    expected = 2 + 3 + sum(blocks * 15 + 5 for blocks in (3, 4, 6, 3))  # conv, bn (w, b, mean, var) per layer
    if len(state) != expected:
        raise DatasetError(f"{path}: holds {len(state)} of the {expected} ResNet-50 trunk tensors; not MSRA's R-50.pkl")
    return state
