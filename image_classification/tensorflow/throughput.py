"""Training images/s of our Keras ResNet-50 against `keras.applications.ResNet50(weights=None)`.

Both models run the same training step (softmax cross-entropy, SGD with momentum, one
`tf.function`, optional XLA) on the same synthetic batch held on the device, so the comparison
measures the models and not the input pipeline. They are timed as the PyTorch pair is, by
`harness.paired_timing.compare`: one untimed call each (tracing, compiling, autotuning: warm), then
rounds alternating between the two models; images/s from each model's median round, the ratio the
median over rounds of the paired ratio of the same round, so a busy machine favours neither model.
`image_classification/bench.py` calls `tensorflow_throughput`.
"""

from __future__ import annotations

import os
import platform
import time

import keras
import tensorflow as tf

from harness.paired_timing import compare
from image_classification.tensorflow.model import build_model, count_parameters


def _train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, jit_compile: bool):
    @tf.function(jit_compile=jit_compile)
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def _time_steps(step, images, labels, steps: int) -> float:
    start = time.perf_counter()
    loss = None
    for _ in range(steps):
        loss = step(images, labels)
    float(loss)  # wait for the device to finish the last step
    return time.perf_counter() - start


def tensorflow_throughput(batch_size: int = 32, steps: int = 10, image_size: int = 224, *,
                          rounds: int = 3, jit_compile: bool = False,
                          precision: str | None = None, num_classes: int = 1000, seed: int = 0) -> dict:
    """Training images/s of ours and of keras.applications.ResNet50 at the same batch; ratio >= 0.95 wanted.
    Each timed call is `steps` training steps; one untimed call per model first (warm).

    `precision`: a Keras dtype policy; default mixed_bfloat16 on a GPU (what training uses, as
    `harness.tf_runtime` sets it), float32 on CPU. The previous global policy is restored after.
    """
    gpus = tf.config.list_physical_devices("GPU")
    policy = precision or ("mixed_bfloat16" if gpus else "float32")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        return _measure(batch_size, steps, image_size, rounds, jit_compile, num_classes, seed, gpus)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _measure(batch_size, steps, image_size, rounds, jit_compile, num_classes, seed, gpus) -> dict:
    keras.utils.set_random_seed(seed)
    images = tf.random.normal([batch_size, image_size, image_size, 3], seed=seed)
    labels = tf.random.uniform([batch_size], 0, num_classes, dtype=tf.int32, seed=seed)
    models = {
        "ours": build_model(num_classes=num_classes, image_size=image_size),
        "keras_applications": keras.applications.ResNet50(
            weights=None, input_shape=(image_size, image_size, 3), classes=num_classes,
            classifier_activation=None),
    }
    steps_fns = {name: _train_step(model, keras.optimizers.SGD(0.01, momentum=0.9), jit_compile)
                 for name, model in models.items()}
    calls = {name: (lambda step=step: _time_steps(step, images, labels, steps)) for name, step in steps_fns.items()}
    timing = compare(calls, rounds=rounds, warmup=1, work_per_call=batch_size * steps, unit="images")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
              else f"CPU ({platform.processor() or platform.machine()})")
    return {
        "framework": f"tensorflow {tf.__version__}, keras {keras.__version__}",
        "device": device,
        "precision": keras.mixed_precision.global_policy().name,
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "jit_compile": jit_compile,
        "batch_size": batch_size, "image_size": image_size, "steps": steps, "rounds": rounds,
        "ours_parameters": count_parameters(models["ours"]),
        "keras_applications_parameters": count_parameters(models["keras_applications"]),
        "ours_images_per_s": timing.rate("ours"),
        "keras_applications_images_per_s": timing.rate("keras_applications"),
        "ratio": timing.ratio("ours", "keras_applications"),
        "round_ratios": timing.round_ratios("ours", "keras_applications"),
        "timing": timing.summary("keras_applications"),
    }
