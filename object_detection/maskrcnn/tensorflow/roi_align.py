"""RoIAlign in TensorFlow, computing what `torchvision.ops.roi_align` computes (aligned=False).

He et al. 2017 sec. 3: each of the P x P bins of a region is the average of s x s bilinear samples
at regularly spaced points. torchvision (and the reference's ROIAlign, the same kernel) puts the
samples of bin (i, j) at

    y = y1 + i * h / P + (iy + 0.5) * h / (P * s),   iy = 0 .. s-1   (x likewise)

with the region scaled by `spatial_scale`, h = max(y2 - y1, 1), and bilinear interpolation that
gives 0 beyond one pixel outside the map and clamps to the border within it (y in [-1, 0] reads
row 0, y in [H-1, H] row H-1).

`roi_align` (fixed sampling ratio s: the box and mask heads, s = 2) uses
`tf.image.crop_and_resize`: the P s x P s sample points of a region form a uniform grid from its
first to its last sample, which is exactly what crop_and_resize samples for a normalized box at
those points; the feature map is first padded by one replicated pixel on every side, which turns
crop_and_resize's "0 outside the image" into torchvision's "clamp within one pixel, 0 beyond";
then an s x s average pool. crop_and_resize takes float32 boxes and returns float32.

`roi_align_adaptive` (s = ceil(h / P) per region, torchvision's sampling_ratio=-1: the mask
targets of `maskrcnn_loss`, which project the ground-truth masks on the proposals) uses that
bilinear sampling is separable: the output is A_y M A_x^T for one-channel maps, A_y (P x H) the
bins' averaged interpolation weights over rows.
"""

from __future__ import annotations

import tensorflow as tf


def _sample_extent(start, end, output_size: int, sampling_ratio: int):
    """First and last sample coordinate of each region along one axis."""
    length = tf.maximum(end - start, 1.0)
    step = length / (output_size * sampling_ratio)
    return start + 0.5 * step, start + length - 0.5 * step


def roi_align(features: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, output_size: int, spatial_scale: float,
              sampling_ratio: int) -> tf.Tensor:
    """(R, P, P, C) pooled features of `boxes` (R, 4) [x1, y1, x2, y2] in image pixels on the NHWC map
    `features` of image `box_indices` (R,), as torchvision.ops.roi_align(..., aligned=False)."""
    dtype = features.dtype
    boxes = tf.cast(boxes, tf.float32) * spatial_scale
    height = tf.cast(tf.shape(features)[1], tf.float32)
    width = tf.cast(tf.shape(features)[2], tf.float32)
    y_first, y_last = _sample_extent(boxes[:, 1], boxes[:, 3], output_size, sampling_ratio)
    x_first, x_last = _sample_extent(boxes[:, 0], boxes[:, 2], output_size, sampling_ratio)
    padded = tf.pad(features, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")  # one replicated border pixel
    # padded pixel k sits at feature coordinate k - 1; crop_and_resize maps [0, 1] onto [0, size - 1]
    normalized = tf.stack([(y_first + 1.0) / (height + 1.0), (x_first + 1.0) / (width + 1.0),
                           (y_last + 1.0) / (height + 1.0), (x_last + 1.0) / (width + 1.0)], axis=1)
    grid = output_size * sampling_ratio
    samples = tf.image.crop_and_resize(padded, normalized, tf.cast(box_indices, tf.int32), [grid, grid],
                                       method="bilinear", extrapolation_value=0.0)
    channels = tf.shape(features)[3]
    samples = tf.reshape(samples, [-1, output_size, sampling_ratio, output_size, sampling_ratio, channels])
    return tf.cast(tf.reduce_mean(samples, axis=[2, 4]), dtype)


def _axis_weights(start, end, extent, depth, output_size: int, dtype):
    """(R, P, depth) averaged bilinear weights of the adaptive sampling along one axis of maps `extent`
    (R,) pixels long (stored `depth` long: padding beyond `extent` is never read)."""
    length = tf.maximum(end - start, 1.0)
    bin_size = length / output_size
    grid = tf.math.ceil(bin_size)  # ceil(length / P) samples per bin
    max_grid = tf.cast(tf.reduce_max(tf.concat([grid, tf.zeros([1], dtype)], axis=0)), tf.int32)
    extent = tf.cast(extent, dtype)[:, None]
    bins = tf.cast(tf.range(output_size), dtype)[None, :]
    total = tf.zeros([tf.shape(start)[0], output_size, depth], dtype)

    def body(index, total):
        sample = tf.cast(index, dtype)
        position = start[:, None] + bins * bin_size[:, None] + (sample + 0.5) * bin_size[:, None] / grid[:, None]
        inside = (position >= -1.0) & (position <= extent) & (sample < grid[:, None])
        position = tf.maximum(position, 0.0)
        low = tf.floor(position)
        at_end = low >= extent - 1
        low = tf.where(at_end, extent - 1, low)
        position = tf.where(at_end, low, position)
        high = tf.where(at_end, low, low + 1)
        fraction = position - low
        weights = (tf.one_hot(tf.cast(low, tf.int32), depth, dtype=dtype) * (1.0 - fraction)[..., None]
                   + tf.one_hot(tf.cast(high, tf.int32), depth, dtype=dtype) * fraction[..., None])
        return index + 1, total + tf.where(inside[..., None], weights, tf.zeros_like(weights))

    _, total = tf.while_loop(lambda index, _: index < max_grid, body, [tf.constant(0), total])
    return total / grid[:, None, None]


def roi_align_adaptive(maps: tf.Tensor, boxes: tf.Tensor, map_indices: tf.Tensor, output_size: int,
                       map_sizes: tf.Tensor | None = None) -> tf.Tensor:
    """(R, P, P) torchvision.ops.roi_align(maps[:, None], rois, P, 1.0) (sampling_ratio -1, aligned=False)
    of one-channel `maps` (N, H, W) at `boxes` (R, 4) pixels, region r on map `map_indices[r]`.

    `map_sizes` (R, 2): the height and width of region r's map when the maps are zero-padded to a
    common (H, W) (a batch of masks of different images); default: (H, W).
    """
    dtype = maps.dtype
    boxes = tf.cast(boxes, dtype)
    count = tf.shape(boxes)[0]
    height, width = tf.shape(maps)[1], tf.shape(maps)[2]
    if map_sizes is None:
        map_sizes = tf.tile(tf.stack([height, width])[None, :], [count, 1])
    rows = _axis_weights(boxes[:, 1], boxes[:, 3], map_sizes[:, 0], height, output_size, dtype)  # (R, P, H)
    cols = _axis_weights(boxes[:, 0], boxes[:, 2], map_sizes[:, 1], width, output_size, dtype)  # (R, P, W)
    chosen = tf.gather(maps, map_indices)  # (R, H, W)
    return tf.matmul(tf.matmul(rows, chosen), cols, transpose_b=True)
