"""`invoke bench speech_recognition`: DeepSpeech2's training speed against a plain GRU stack, and its input rate.

- model against peer, per framework: one training step (forward, CTC loss, backward, SGD) of our
  DeepSpeech2 against one of the framework's own plain stack of GRU layers of the same sizes
  (torch.nn.GRU(num_layers=L) / keras GRU layers, with the same linear output layer and CTC loss) on
  the frames the convolutions would hand it. Both sides run the same batches the same number of times,
  in alternating rounds; the score is the median of the paired per-round ratios (ours / peer: the cost
  of the convolutions, batch norms and our layer plumbing). GFLOP/s counts the multiply-adds of the
  convolutions, GRUs and output layer (x2 for a FLOP, x3 for forward + backward), against the
  measured fp32 matmul peak of the same device.
- input pipeline against model: seconds of audio per second that one core turns from FLAC into
  features (features.py, with the reference's tempo/gain augmentation) against seconds of audio per
  second the model trains on.

On CPU the REDUCED model of the smoke config is timed (the reference's 104M parameters at 16 kHz take
minutes per step on 2 cores); on a GPU the reference sizes. Each number says which.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from speech_recognition.architecture import output_frames, rnn_input_size
from speech_recognition.features import HOP, SAMPLE_RATE, Augmentation
from speech_recognition.text import NUM_CLASSES

REDUCED = {"conv_channels": 8, "rnn_hidden_size": 256, "rnn_layers": 3}
REFERENCE = {"conv_channels": 32, "rnn_hidden_size": 2560, "rnn_layers": 3}


def forward_macs(frames: int, conv_channels: int, rnn_hidden_size: int, rnn_layers: int) -> dict[str, int]:
    """Multiply-adds of one forward pass over one utterance of `frames` input frames, per layer kind."""
    time1 = (frames - 11) // 2 + 1
    time2 = int(output_frames(frames))
    sizes = [rnn_input_size(conv_channels)] + [rnn_hidden_size] * rnn_layers
    return {"conv1": 61 * time1 * conv_channels * 41 * 11,
            "conv2": 21 * time2 * conv_channels * conv_channels * 21 * 11,
            # 3 gates, each an input and a recurrent matrix product per frame
            "gru": sum(3 * rnn_hidden_size * (sizes[i] + rnn_hidden_size) for i in range(rnn_layers)) * time2,
            "fc": rnn_hidden_size * NUM_CLASSES * time2}


def training_flops(frames: int, conv_channels: int, rnn_hidden_size: int, rnn_layers: int) -> float:
    """FLOPs of one training step on one utterance: 2 per multiply-add, x3 for forward and backward."""
    return 2.0 * 3.0 * sum(forward_macs(frames, conv_channels, rnn_hidden_size, rnn_layers).values())


def _batch(batch_size: int, seconds: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    frames = 1 + int(seconds * SAMPLE_RATE) // HOP
    targets = rng.integers(1, NUM_CLASSES, (batch_size, int(seconds * 14))).astype(np.int32)  # ~14 characters/s
    return {"features": rng.standard_normal((batch_size, 161, frames)).astype(np.float32), "frames": frames,
            "output_frames": np.full(batch_size, output_frames(frames), np.int32), "targets": targets,
            "target_lengths": np.full(batch_size, targets.shape[1], np.int32)}


def _paired(ours, peer, rounds: int, steps: int) -> dict:
    """Alternate `steps` of ours and of the peer for `rounds` rounds (after one warm-up step each)."""
    ours(), peer()
    ours_times, peer_times = [], []
    for round_index in range(rounds):
        order = (ours, peer) if round_index % 2 == 0 else (peer, ours)
        for function in order:
            began = time.perf_counter()
            for _ in range(steps):
                function()
            (ours_times if function is ours else peer_times).append((time.perf_counter() - began) / steps)
    ratios = [a / b for a, b in zip(ours_times, peer_times)]
    return {"ours_step_s": statistics.median(ours_times), "peer_step_s": statistics.median(peer_times),
            "ratio_median": statistics.median(ratios), "round_ratios": ratios}


def pytorch_model_vs_peer(sizes: dict, batch_size: int, seconds: float, rounds: int, steps: int) -> dict:
    import torch

    from speech_recognition.pytorch.model import DeepSpeech2

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = _batch(batch_size, seconds)
    spect = torch.from_numpy(data["features"]).unsqueeze(1).to(device)
    targets = torch.from_numpy(data["targets"]).long().to(device)
    lengths = torch.from_numpy(data["output_frames"]).long()
    target_lengths = torch.from_numpy(data["target_lengths"]).long()
    model = DeepSpeech2(**sizes).to(device)
    hidden = sizes["rnn_hidden_size"]
    peer_gru = torch.nn.GRU(rnn_input_size(sizes["conv_channels"]), hidden, num_layers=sizes["rnn_layers"],
                            batch_first=True).to(device)
    peer_fc = torch.nn.Linear(hidden, NUM_CLASSES, bias=False).to(device)
    peer_input = torch.randn(batch_size, int(lengths[0]), rnn_input_size(sizes["conv_channels"]), device=device)
    ours_optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9, nesterov=True)
    peer_optimizer = torch.optim.SGD([*peer_gru.parameters(), *peer_fc.parameters()], lr=1e-5, momentum=0.9, nesterov=True)

    def step(logits, optimizer, parameters):
        loss = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), targets, lengths, target_lengths,
                                            reduction="sum", zero_infinity=True) / batch_size
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 400.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    def ours():
        step(model(spect), ours_optimizer, model.parameters())

    def peer():
        step(peer_fc(peer_gru(peer_input)[0]), peer_optimizer, [*peer_gru.parameters(), *peer_fc.parameters()])

    result = _paired(ours, peer, rounds, steps)
    return {**result, "device": str(device), "threads": torch.get_num_threads(), "version": torch.__version__}


def tensorflow_model_vs_peer(sizes: dict, batch_size: int, seconds: float, rounds: int, steps: int) -> dict:
    import keras
    import tensorflow as tf

    from speech_recognition.tensorflow.model import DeepSpeech2
    from speech_recognition.tensorflow.train import SGD, clip_by_global_norm, ctc_loss_sum

    if not tf.config.list_physical_devices("GPU"):
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already started in this process: keep its threads
            pass

    data = _batch(batch_size, seconds)
    spect = tf.constant(data["features"][..., None])
    args = (tf.constant(data["output_frames"]), tf.constant(data["targets"]), tf.constant(data["target_lengths"]))
    model = DeepSpeech2(**sizes)
    model(spect[:1, :, :31])
    hidden = sizes["rnn_hidden_size"]
    peer = keras.Sequential([keras.layers.GRU(hidden, return_sequences=True) for _ in range(sizes["rnn_layers"])]
                            + [keras.layers.Dense(NUM_CLASSES, use_bias=False)])
    peer_input = tf.random.normal([batch_size, int(data["output_frames"][0]), rnn_input_size(sizes["conv_channels"])])
    peer(peer_input[:1])

    def make_step(network, inputs):
        optimizer = SGD(learning_rate=1e-5, momentum=0.9, nesterov=True)
        optimizer.build(network.trainable_variables)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = ctc_loss_sum(network(inputs, training=True), *args) / batch_size
            gradients = clip_by_global_norm(tape.gradient(loss, network.trainable_variables), 400.0)
            optimizer.apply_gradients(zip(gradients, network.trainable_variables))
            return loss

        return lambda: step().numpy()

    result = _paired(make_step(model, spect), make_step(peer, peer_input), rounds, steps)
    return {**result, "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU", "version": tf.__version__}


def feature_rate(seconds_of_audio: float = 60.0) -> dict:
    """Seconds of audio per second that one thread turns from FLAC into (augmented) features."""
    import tempfile

    import soundfile

    from speech_recognition.audio import read_audio
    from speech_recognition.features import augment, features

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index in range(int(seconds_of_audio // 12)):  # 12 s utterances, LibriSpeech's mean length
            path = os.path.join(folder, f"{index}.flac")
            soundfile.write(path, (rng.standard_normal(12 * SAMPLE_RATE) * 0.1).astype(np.float32), SAMPLE_RATE,
                            subtype="PCM_16")
            paths.append(path)
        rates = {}
        for name, options in (("plain", Augmentation()), ("tempo_and_gain", Augmentation(tempo_and_gain=True))):
            began = time.process_time()
            for index, path in enumerate(paths):
                features(augment(read_audio(path), options, np.random.default_rng(index)))
            rates[name] = 12 * len(paths) / (time.process_time() - began)
    return {"audio_seconds_per_cpu_second": rates}


def run_bench(rounds: int = 5, steps: int = 1, include_tensorflow: bool = True) -> dict:
    import torch

    on_gpu = torch.cuda.is_available()
    sizes = REFERENCE if on_gpu else REDUCED
    batch_size, seconds = (8, 12.0) if on_gpu else (8, 4.0)
    if not on_gpu:
        # one intra-op thread per framework, as recommendation/bench.py: both measured alike, and no
        # OpenMP spin-waiting against other processes on a shared machine (2 threads under a load of
        # 20+ made a PyTorch step 50x slower here)
        torch.set_num_threads(1)
    result = {"model": "reference" if on_gpu else "REDUCED (smoke sizes)", "sizes": sizes, "batch_size": batch_size,
              "utterance_seconds": seconds, "load_average": os.getloadavg()}
    flops = training_flops(1 + int(seconds * SAMPLE_RATE) // HOP, **sizes) * batch_size
    from image_classification.pytorch.throughput import gemm_peak_gflops

    peak = gemm_peak_gflops(size=2048 if not on_gpu else None)
    result["gemm_peak_gflops"] = peak["gflops"]
    frameworks = [("pytorch", pytorch_model_vs_peer)] + ([("tensorflow", tensorflow_model_vs_peer)] if include_tensorflow else [])
    for name, function in frameworks:
        measured = function(sizes, batch_size, seconds, rounds, steps)
        measured["gflops"] = flops / measured["ours_step_s"] / 1e9
        measured["fraction_of_gemm_peak"] = measured["gflops"] / peak["gflops"]
        measured["model_audio_seconds_per_second"] = batch_size * seconds / measured["ours_step_s"]
        result[name] = measured
    result["input_pipeline"] = feature_rate()
    _print(result)
    return result


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"DeepSpeech2 {result['model']}: batch {result['batch_size']} x {result['utterance_seconds']} s, "
                        f"load {result['load_average'][0]:.1f}")
    for column in ("framework", "ours s/step", "plain GRU s/step", "ratio (median)", "GFLOP/s", "of GEMM peak",
                   "audio s/s trained"):
        table.add_column(column)
    for name in ("pytorch", "tensorflow"):
        if name in result:
            r = result[name]
            table.add_row(name, f"{r['ours_step_s']:.3f}", f"{r['peer_step_s']:.3f}", f"{r['ratio_median']:.2f}",
                          f"{r['gflops']:.1f}", f"{r['fraction_of_gemm_peak']:.0%}", f"{r['model_audio_seconds_per_second']:.0f}")
    Console().print(table)
    rates = result["input_pipeline"]["audio_seconds_per_cpu_second"]
    Console().print(f"input pipeline (one core): {rates['plain']:.0f} audio s/s plain, {rates['tempo_and_gain']:.0f} "
                    f"with tempo/gain; GEMM peak {result['gemm_peak_gflops']:.0f} GFLOP/s")
