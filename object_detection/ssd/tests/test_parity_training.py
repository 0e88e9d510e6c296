"""A few training steps agree across frameworks: the reduced SSD in float64, the same weights and the
same batches, through each framework's own `train_one_epoch` (PyTorch) and `make_train_step` +
`train_one_epoch` (TensorFlow), with the shared learning-rate schedule (warmup included) and the
torch-style SGD of both. Covers the loss with hard-negative mining, the optimizer, weight decay,
momentum and BN in training mode, end to end.

Why float64 and a small learning rate: the claim is "the same function", and float32 rounding
differs across CPUs (AVX2, AVX-512, AMX) and libraries; in float64 the frameworks' different
summation orders leave differences near 1e-15 relative, which three small steps cannot amplify to
the 1e-8 bound (COMMON.md, numerics).
"""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch

# isort: split
import keras
import numpy as np
import pytest
import tensorflow as tf

from harness import torch_runtime
from harness.config import load_config
from harness.tf_optimizers import TorchSGD
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file, image_dir
from object_detection.presets_pytorch import SSDTrain
from object_detection.ssd import default_boxes
from object_detection.ssd.config import Config, learning_rate_schedule
from object_detection.ssd.pytorch import train as torch_train
from object_detection.ssd.pytorch.data import TrainSet
from object_detection.ssd.pytorch.model import build_model as build_torch
from object_detection.ssd.tensorflow import convert
from object_detection.ssd.tensorflow import train as keras_train
from object_detection.ssd.tensorflow.model import build_model as build_keras

pytestmark = pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps (.ci/run)

SMOKE = "object_detection/ssd/configs/smoke.yaml"
BATCH, STEPS = 8, 3  # 24 real tiny-COCO images, augmented and matched by the product's pipeline
# relative to each tensor's scale: float64 differences of summation order are ~1e-15 of it
BOUND = 1e-8


@pytest.fixture
def float64_keras():
    keras.config.set_floatx("float64")  # also the optimizer's learning-rate variable
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")


def batches_from_the_pipeline(cfg: Config, data_dir, anchors_xyxy: np.ndarray):
    """STEPS batches of (NCHW images, matched boxes, labels) in float64 from the PyTorch pipeline."""
    train = CocoDetection(annotation_file(data_dir, "train"), image_dir(data_dir, "train"))
    samples = TrainSet(train, SSDTrain(cfg.model.image_size, torch.from_numpy(anchors_xyxy)), cfg.run.seed)
    items = [samples[(1, index)] for index in range(BATCH * STEPS)]
    images, boxes, labels = (torch.stack([item[k] for item in items]) for k in range(3))
    assert (labels > 0).sum(dim=1).min() > 0  # every image has positives: the loss sees them all
    return images.double(), boxes.double(), labels, len(train)


def test_a_few_training_steps_agree_across_frameworks(tiny_coco, float64_keras):
    cfg = load_config(Config, SMOKE, [f"data.batch_size={BATCH}", "optimizer.base_lr=0.02",
                                          "optimizer.warmup_epochs=2", "run.threads=1"])
    anchors = default_boxes.from_config(cfg.model).astype(np.float64)
    anchors_xyxy = default_boxes.cxcywh_to_xyxy(anchors)
    images, boxes, labels, train_images = batches_from_the_pipeline(cfg, tiny_coco, anchors_xyxy.astype(np.float32))
    # the reference's schedule over an epoch of `train_images`: STEPS steps inside the warmup
    schedule = learning_rate_schedule(cfg, train_images, BATCH, train_images // BATCH)
    assert schedule.warmup_steps > STEPS and schedule(STEPS - 1, 1) > 0

    rt = torch_runtime.setup(cfg.run)
    torch_model = build_torch(cfg.model, 6).double()
    initial = {name: p.detach().clone() for name, p in torch_model.named_parameters()}
    keras_model = build_keras(cfg.model, 6)
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())

    optimizer = torch.optim.SGD(torch_model.parameters(), lr=schedule.peak, momentum=cfg.optimizer.momentum,
                                weight_decay=cfg.optimizer.weight_decay)
    torch_batches = list(zip(images.split(BATCH), boxes.split(BATCH), labels.split(BATCH)))
    _, torch_loss = torch_train.train_one_epoch(torch_model, torch_batches, optimizer, rt.grad_scaler(), schedule,
                                                torch.from_numpy(anchors), rt, cfg, 1, STEPS, BATCH)

    keras_optimizer = TorchSGD(schedule.peak, momentum=cfg.optimizer.momentum, weight_decay=cfg.optimizer.weight_decay)
    keras_optimizer.build(keras_model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    train_step = keras_train.make_train_step(cfg, strategy, keras_model, keras_optimizer, tf.constant(anchors), BATCH)
    dataset = tf.data.Dataset.from_tensor_slices((images.permute(0, 2, 3, 1).numpy(), boxes.numpy(), labels.numpy()))
    _, keras_loss = keras_train.train_one_epoch(cfg, iter(dataset.batch(BATCH)), train_step, keras_optimizer,
                                                schedule, 1, STEPS, BATCH)

    assert keras_loss == pytest.approx(torch_loss, rel=BOUND) and torch_loss > 1
    keras_state = convert.torch_state_dict(keras_model)
    for name, parameter in torch_model.named_parameters():
        ours, theirs = parameter.detach().numpy(), keras_state[name]
        moved = np.abs(ours - initial[name].numpy()).max()
        scale = np.abs(ours).max()
        assert moved > 100 * BOUND * scale, name  # the steps changed it far beyond the bound
        assert np.abs(ours - theirs).max() <= BOUND * scale, name
    for name, buffer in torch_model.state_dict().items():
        if name.endswith("running_mean"):
            assert np.abs(buffer.numpy() - keras_state[name]).max() <= BOUND * np.abs(buffer.numpy()).max(), name
        # running_var: torch averages the unbiased batch variance, Keras the biased one
        # (image_classification/tensorflow/model.py); training-mode steps never read either
