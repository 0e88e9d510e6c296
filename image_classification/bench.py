"""`invoke bench image_classification`: is our ResNet-50 as fast as the frameworks' own?

- training images/s of `pytorch/model.py` against `torchvision.models.resnet50`, and of
  `tensorflow/model.py` against `keras.applications.ResNet50`: same batch, same machine, timed by
  `harness.paired_timing.compare` (one untimed call each: warm; the two models of a pair in
  alternating rounds in one process; images/s of the median round, the ratio the median of the
  paired ratios); the ratio should be >= 0.95 (RATIO_TARGET);
- the FLOP/s those images/s mean (forward + backward FLOPs counted by torch's FlopCounterMode),
  next to the machine's measured fp32 GEMM throughput, so a number says how close to the hardware
  it is;
- images/s per DataLoader worker of the training input pipeline on ImageNet-sized JPEGs.

Every printed number carries its signature: the machine (CPU, cores, load average), framework
versions, device, precision, batch, threads.
"""

from __future__ import annotations

import tempfile

from rich.console import Console
from rich.table import Table

from harness import machine

console = Console()
RATIO_TARGET = 0.95  # our model's training images/s over the framework's own ResNet-50's


def _settings(on_gpu: bool) -> dict:
    if on_gpu:
        return {"batch_size": 256, "steps": 20, "rounds": 5}
    return {"batch_size": 16, "steps": 2, "rounds": 5}


def run_bench(include_tensorflow: bool = True) -> dict:
    import torch

    from image_classification import dataset
    from image_classification.pytorch.throughput import (
        gemm_peak_gflops,
        pipeline_throughput,
        pytorch_throughput,
        training_flops_per_image,
    )

    on_gpu = torch.cuda.is_available()
    settings = _settings(on_gpu)
    result: dict = {"machine": machine.describe(), "settings": settings}
    console.print(f"machine: {machine.one_line(result['machine'])}")
    gemm_before = gemm_peak_gflops()
    flops = training_flops_per_image()
    result["training_gflop_per_image"] = flops / 1e9

    console.print(f"measuring PyTorch (batch {settings['batch_size']}) ...")
    result["pytorch"] = pytorch_throughput(**settings)
    if include_tensorflow:
        try:
            from image_classification.tensorflow.throughput import tensorflow_throughput
        except ImportError as error:
            result["tensorflow"] = {"skipped": f"cannot import the Keras side ({error})"}
        else:
            console.print(f"measuring TensorFlow (batch {settings['batch_size']}) ...")
            result["tensorflow"] = tensorflow_throughput(**settings)
    # the peak is the best of a measurement before and one after the models (a shared machine's
    # load comes and goes; a peak below what a model achieved would be no peak)
    result["gemm_fp32"] = max(gemm_before, gemm_peak_gflops(), key=lambda gemm: gemm["gflops"])
    if on_gpu:
        result["gemm_bf16"] = gemm_peak_gflops(dtype=torch.bfloat16)

    with tempfile.TemporaryDirectory() as folder:
        # ImageNet's JPEGs average about 400x350 pixels (~110 kB); the smoke data's are smaller
        data = dataset.make_tiny(folder, seed=0, num_classes=4, train_per_class=60, val_per_class=1,
                                 short_side=(333, 375))
        result["pipeline"] = [pipeline_throughput(str(data), workers=workers, images=200)
                              for workers in sorted({1, min(4, torch.get_num_threads())})]
    result["machine_after"] = machine.describe()
    _print(result, flops)
    return result


def _print(result: dict, flops: float) -> None:
    peak = result["gemm_fp32"]["gflops"]
    table = Table(title="ResNet-50 v1.5 training throughput: ours against the framework's own model")
    for column in ("framework", "model", "images/s", "ratio", "GFLOP/s", "of fp32 GEMM peak"):
        table.add_column(column, justify="right")
    for framework, peer in (("pytorch", "torchvision"), ("tensorflow", "keras_applications")):
        numbers = result.get(framework, {})
        if "ratio" not in numbers:
            table.add_row(framework, "-", numbers.get("skipped", "not run"), "", "", "")
            continue
        for name in ("ours", peer):
            images_per_s = numbers[f"{name}_images_per_s"]
            gflops = images_per_s * flops / 1e9
            table.add_row(framework, name, f"{images_per_s:,.1f}",
                          f"{numbers['ratio']:.3f}" if name == "ours" else "", f"{gflops:,.0f}",
                          f"{gflops / peak:.0%}")
    console.print(table)
    for framework in ("pytorch", "tensorflow"):
        numbers = result.get(framework, {})
        if "ratio" in numbers:
            console.print(f"  {framework}: {numbers['framework']}; {numbers['device']}; {numbers['precision']}; "
                          f"batch {numbers['batch_size']} x {numbers['image_size']}px; images/s: median of "
                          f"{numbers['rounds']} alternating rounds of {numbers['steps']} steps, warm; ratio: median "
                          f"of the paired ratios {[round(r, 3) for r in numbers['round_ratios']]} "
                          f"(target >= {RATIO_TARGET}: {'met' if numbers['ratio'] >= RATIO_TARGET else 'NOT met'})")
    gemm = result["gemm_fp32"]
    console.print(f"  fp32 GEMM peak (measured, {gemm['size']}^3 matmul, {gemm['threads']} threads): "
                  f"{gemm['gflops']:,.0f} GFLOP/s on {result['machine']['cpu']}"
                  + (f"; bf16 {result['gemm_bf16']['gflops']:,.0f} GFLOP/s" if "gemm_bf16" in result else ""))
    console.print(f"  one training image = {result['training_gflop_per_image']:.1f} GFLOP (forward + backward)")
    for entry in result["pipeline"]:
        console.print(f"  input pipeline (PIL decode + RandomResizedCrop 224 + flip + normalize, ImageNet-sized "
                      f"JPEGs): {entry['workers']} worker(s) {entry['images_per_s']:,.0f} images/s = "
                      f"{entry['images_per_s_per_worker']:,.0f} per worker")
    console.print(f"  machine: {machine.one_line(result['machine'])}; after: load average "
                  f"{result['machine_after']['load_average']}")


if __name__ == "__main__":
    run_bench()
