"""PyTorch <-> Keras Mask R-CNN: the same parameters, names and function.

- The reference network (ResNet-50-FPN, 81 classes) has the same parameter count in both frameworks
  and as torchvision's own maskrcnn_resnet50_fpn, converts both ways without loss, and with converted
  weights computes the same features, RPN outputs and head outputs (float32, 1e-5 of each output's scale).
- The reduced smoke network in float64 ("the same function"): backbone + FPN features and RPN
  objectness and deltas to 1e-10; box-head and mask-head outputs for the same proposals to 1e-6
  (the TensorFlow RoIAlign samples through tf.image.crop_and_resize, float32 only: 1e-5 of the
  output's scale, COMMON.md's float32 bound) and, for the same pooled features, to 1e-10; proposals
  after NMS identical; the five training losses for the same batch and sampling keys to 1e-5.
- End to end on the tiny validation images (float32): the same number of detections, boxes within
  1e-3 px, labels equal, mask probabilities within 1e-3.
Outputs after sorting and suppression are compared as detections; the ops before them are compared
one by one in test_ops.py."""

from __future__ import annotations

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import torchvision
from torchvision.models.detection.image_list import ImageList

from harness.config import load_config
from object_detection.coco_reader import CocoDetection
from object_detection.dataset import annotation_file, image_dir
from object_detection.maskrcnn.config import Config
from object_detection.maskrcnn.pytorch.model import build_model as build_torch
from object_detection.maskrcnn.pytorch.model import count_parameters
from object_detection.maskrcnn.tensorflow import convert, roi_heads
from object_detection.maskrcnn.tensorflow.model import build_model as build_keras
from object_detection.maskrcnn.tests.batches import padded_batch
from object_detection.presets_pytorch import MaskRCNNEval, MaskRCNNTrain

pytestmark = pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps (.ci/run)

REFERENCE = load_config(Config, "object_detection/maskrcnn/configs/reference.yaml")
SMOKE = load_config(Config, "object_detection/maskrcnn/configs/smoke.yaml")
REFERENCE_PARAMETERS = 44_347_573  # Mask R-CNN R-50-FPN for COCO's 80 categories + background
SMOKE_PARAMETERS = 1_794_819  # the REDUCED smoke network for the tiny COCO's 5 categories + background


def nhwc(tensor: torch.Tensor) -> tf.Tensor:
    return tf.constant(tensor.permute(0, 2, 3, 1).numpy())


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def with_statistics(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial batch-norm parameters and statistics (fresh ones are the identity), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torchvision.ops.FrozenBatchNorm2d)):
                dtype = module.weight.dtype
                module.weight.copy_(torch.empty_like(module.weight).uniform_(0.5, 1.5, generator=generator))
                module.bias.copy_(torch.empty_like(module.bias).normal_(0, 0.2, generator=generator).to(dtype))
                module.running_mean.copy_(torch.empty_like(module.running_mean).normal_(0, 0.2, generator=generator))
                module.running_var.copy_(torch.empty_like(module.running_var).uniform_(0.5, 2, generator=generator))
    return model.eval()


def test_the_reference_network_converts_with_the_same_outputs():
    torch.manual_seed(0)
    torch_model = with_statistics(build_torch(REFERENCE.model, 81), 1)
    keras_model = build_keras(REFERENCE.model, 81)
    # torchvision's own model, untrained, has trainable batch norm: its parameters less those are ours
    peer = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=81)
    peer_batchnorm = sum(p.numel() for m in peer.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert count_parameters(torch_model) == convert.parameter_count(keras_model) \
        == count_parameters(peer) - peer_batchnorm == REFERENCE_PARAMETERS
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    state = convert.torch_state_dict(keras_model)  # and back, bit for bit
    assert set(state) == set(torch_model.state_dict())
    assert all(np.array_equal(state[key], value.numpy()) for key, value in torch_model.state_dict().items())

    images = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(2)) * 50
    with torch.no_grad():
        features = torch_model.backbone(images)
        objectness, deltas = torch_model.rpn.head(list(features.values()))
        proposals, _ = torch_model.rpn(ImageList(images, [(128, 160)]), features)
        pooled = torch_model.roi_heads.box_roi_pool(features, proposals, [(128, 160)])
        class_logits, box_regression = torch_model.roi_heads.box_predictor(torch_model.roi_heads.box_head(pooled))
        mask_pooled = torch_model.roi_heads.mask_roi_pool(features, proposals, [(128, 160)])
        mask_logits = torch_model.roi_heads.mask_predictor(torch_model.roi_heads.mask_head(mask_pooled))
    keras_features = keras_model.features(nhwc(images), training=False)
    for theirs, ours in zip(features.values(), keras_features):
        assert relative(ours.numpy(), theirs.permute(0, 2, 3, 1).numpy()) <= 1e-5
    keras_objectness, keras_deltas = keras_model.rpn.head(keras_features)
    for theirs, ours in zip(objectness + deltas, keras_objectness + keras_deltas):
        assert relative(ours.numpy(), theirs.permute(0, 2, 3, 1).numpy()) <= 1e-5
    # the same proposals into the heads
    boxes, images_of = tf.constant(proposals[0].numpy()), tf.zeros([len(proposals[0])], tf.int32)
    sizes = tf.constant([[128, 160]], tf.int32)
    keras_class, keras_regression = roi_heads.box_features(keras_model.roi_heads, keras_features, boxes, images_of, sizes,
                                                           REFERENCE.model)
    keras_masks = roi_heads.mask_logits(keras_model.roi_heads, keras_features, boxes, images_of, sizes, REFERENCE.model)
    assert relative(keras_class.numpy(), class_logits.numpy()) <= 1e-4
    assert relative(keras_regression.numpy(), box_regression.numpy()) <= 1e-4
    assert relative(keras_masks.numpy(), mask_logits.permute(0, 2, 3, 1).numpy()) <= 1e-4


@pytest.fixture(scope="module")
def float64_pair():
    """The smoke network in float64 in both frameworks, with the same (converted) weights."""
    import keras

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        torch.manual_seed(0)
        torch_model = with_statistics(build_torch(SMOKE.model, 6).double(), 3)
        keras_model = build_keras(SMOKE.model, 6)
        convert.load_torch_state_dict(keras_model, torch_model.state_dict())
        yield torch_model, keras_model
    finally:
        keras.config.set_dtype_policy("float32")
        keras.config.set_floatx("float32")


def test_the_reduced_network_is_the_same_function_in_float64(float64_pair):
    torch_model, keras_model = float64_pair
    assert count_parameters(torch_model) == convert.parameter_count(keras_model) == SMOKE_PARAMETERS
    images = torch.randn(2, 3, 128, 192, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 50
    images[1, :, 100:], images[1, :, :, 150:] = 0, 0  # the second image is 100 x 150, padded
    sizes = [(128, 192), (100, 150)]
    with torch.no_grad():
        features = torch_model.backbone(images)
        objectness, deltas = torch_model.rpn.head(list(features.values()))
        proposals, _ = torch_model.rpn(ImageList(images, sizes), features)
        pooled = torch_model.roi_heads.box_roi_pool(features, proposals, sizes)
        class_logits, box_regression = torch_model.roi_heads.box_predictor(torch_model.roi_heads.box_head(pooled))
        mask_pooled = torch_model.roi_heads.mask_roi_pool(features, proposals, sizes)
        mask_logits = torch_model.roi_heads.mask_predictor(torch_model.roi_heads.mask_head(mask_pooled))
    keras_features = keras_model.features(nhwc(images), training=False)
    for theirs, ours in zip(features.values(), keras_features):
        assert relative(ours.numpy(), theirs.permute(0, 2, 3, 1).numpy()) <= 1e-10
    keras_objectness, keras_deltas = keras_model.rpn.head(keras_features)
    for theirs, ours in zip(objectness + deltas, keras_objectness + keras_deltas):
        assert relative(ours.numpy(), theirs.permute(0, 2, 3, 1).numpy()) <= 1e-10
    keras_proposals, _, _, _ = keras_model.proposals(keras_features, nhwc(images), tf.constant(sizes, tf.int32), training=False)
    for theirs, ours in zip(proposals, keras_proposals):
        assert ours.shape == theirs.shape and relative(ours.numpy(), theirs.numpy()) <= 1e-10
    # the heads on the same proposals: RoIAlign through crop_and_resize rounds to float32, a float32 bound
    boxes = tf.constant(torch.cat(proposals).numpy())
    images_of = tf.constant(np.repeat([0, 1], [len(p) for p in proposals]), tf.int32)
    keras_class, keras_regression = roi_heads.box_features(keras_model.roi_heads, keras_features, boxes, images_of,
                                                           tf.constant(sizes, tf.int32), SMOKE.model)
    keras_masks = roi_heads.mask_logits(keras_model.roi_heads, keras_features, boxes, images_of,
                                        tf.constant(sizes, tf.int32), SMOKE.model)
    assert relative(keras_class.numpy(), class_logits.numpy()) <= 1e-5
    assert relative(keras_regression.numpy(), box_regression.numpy()) <= 1e-5
    assert relative(keras_masks.numpy(), mask_logits.permute(0, 2, 3, 1).numpy()) <= 1e-5
    # the heads alone on the same pooled features: the same function to float64 rounding
    class_only, regression_only = keras_model.roi_heads.box_predictor(keras_model.roi_heads.box_head(nhwc(pooled)))
    masks_only = keras_model.roi_heads.mask_predictor(keras_model.roi_heads.mask_head(nhwc(mask_pooled)))
    assert relative(class_only.numpy(), class_logits.numpy()) <= 1e-10
    assert relative(regression_only.numpy(), box_regression.numpy()) <= 1e-10
    assert relative(masks_only.numpy(), mask_logits.permute(0, 2, 3, 1).numpy()) <= 1e-10


def test_the_training_losses_agree_in_float64(float64_pair, tiny_coco):
    torch_model, keras_model = float64_pair
    train = CocoDetection(annotation_file(tiny_coco, "train"), image_dir(tiny_coco, "train"))
    transform = MaskRCNNTrain(SMOKE.data.min_size, SMOKE.data.max_size)
    from object_detection import augment

    images, targets = [], []
    for index in (0, 5, 9):
        image, target = transform(train.load_image(index), train.records[index], augment.sample_rng(1, 1, index))
        target["sample_key"] = torch.tensor(augment.sample_key(1, 1, index))
        images.append(image.double())
        targets.append({**target, "boxes": target["boxes"].double()})  # float64 on both sides
    torch_model.train()
    try:
        with torch.no_grad():
            theirs = torch_model(images, targets)
    finally:
        torch_model.eval()
    ours = keras_model.losses(*padded_batch(images, targets))
    for name, value in theirs.items():
        assert float(value) > 1e-3, name
        # a float32 bound: TensorFlow's RoIAlign samples in float32; torchvision computes the
        # objectness loss with float32 labels
        assert float(ours[name]) == pytest.approx(float(value), rel=1e-5), name


def test_detections_agree_end_to_end_on_the_tiny_validation_images(tiny_coco):
    torch.manual_seed(5)
    torch_model = with_statistics(build_torch(SMOKE.model, 6), 6)
    keras_model = build_keras(SMOKE.model, 6)
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    val = CocoDetection(annotation_file(tiny_coco, "val"), image_dir(tiny_coco, "val"), skip_empty=False)
    transform = MaskRCNNEval(SMOKE.data.min_size, SMOKE.data.max_size)
    total = 0
    for index in range(len(val)):
        image = transform(val.load_image(index))
        with torch.no_grad():
            theirs = torch_model([image])[0]
        padded = torch.nn.functional.pad(image, (0, -image.shape[2] % 32, 0, -image.shape[1] % 32))[None]
        boxes, scores, labels, masks, counts = (t.numpy() for t in keras_model(nhwc(padded), tf.constant([image.shape[1:]], tf.int32)))
        assert int(counts[0]) == len(theirs["boxes"]), index
        total += len(boxes)
        # equal up to the order of near-equal scores: match each detection to its twin
        for box, label, mask in zip(theirs["boxes"].numpy(), theirs["labels"].numpy(), theirs["masks"][:, 0].numpy()):
            distance = np.abs(boxes - box).max(axis=1) + 1e6 * (labels != label)
            twin = int(np.argmin(distance))
            assert distance[twin] <= 1e-3, (index, box)
            # the masks are cropped (RoIAlign) at boxes that agree only to 1e-3 px in float32, and a
            # probability on a mask's steep edge moves by several times that (1.4e-3 seen on one CPU):
            # what evaluation consumes is the mask thresholded at 0.5, which must agree wherever
            # neither probability sits within 1e-2 of the threshold
            decided = (np.abs(masks[twin] - 0.5) > 1e-2) & (np.abs(mask - 0.5) > 1e-2)
            assert np.array_equal((masks[twin] > 0.5)[decided], (mask > 0.5)[decided]), index
            assert np.abs(masks[twin] - mask).max() <= 1e-2
    assert total >= 100
