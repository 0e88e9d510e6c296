"""`invoke bench gnmt`: how fast our GNMT trains against a plain stack of the framework's own LSTM
layers of the same sizes, and whether the input keeps up.

- training target tokens/s (forward, the reference's label-smoothed loss, backward, clipping, Adam)
  of pytorch/model.py against a peer of `nn.LSTM` layers, and of tensorflow/model.py against a peer
  of `keras.layers.LSTM` layers: the same shared embedding, an encoder of `num_layers` LSTMs over
  the source and a decoder of `num_layers` LSTMs over the target, the same classifier; no
  attention, no bidirectional layer, no residuals (what GNMT adds); same batch, the two models
  alternating rounds in one process, the ratio the median over rounds of the ratio of adjacent
  timings (translation/throughput.py, harness/speed.py);
- our PyTorch step's GFLOP/s (FLOPs written out from the architecture: `training_flops`) against
  the machine's measured fp32 GEMM peak;
- the input pipeline's target tokens/s (bucketing + padding, translation/batching.py) on the tiny
  data against the model's.

Sizes: GNMT v2 on a GPU (hidden 1024, 4 layers, the reference's 32,320-token vocabulary, 128
pairs of 32 tokens); on a CPU a REDUCED size (hidden 256, vocabulary 8,000, 64 pairs of 24
tokens), labelled in the output, since one reference step takes minutes there.
"""

from __future__ import annotations

import dataclasses

from translation import throughput
from translation.throughput import console, pytorch_pair, tensorflow_pair

REFERENCE = {"vocab": 32320, "hidden": 1024, "layers": 4, "batch": 128, "length": 32}
CPU_SIZE = {"vocab": 8000, "hidden": 256, "layers": 4, "batch": 64, "length": 24}


def training_flops(size: dict) -> float:
    """FLOPs of one training step: 2 per multiply-add, backward twice the forward. Per pair with
    source and decoder lengths S = T = length: encoder LSTMs (bidirectional h->h, 2h->h, then h->h),
    the decoder's attention LSTM, its query / key projections, the Bahdanau scores and context
    (T x S x h each), the decoder LSTMs 2h->h and the classifier h->vocab."""
    h, layers, vocab, length = size["hidden"], size["layers"], size["vocab"], size["length"]

    def lstm(inputs: int) -> int:  # multiply-adds per token
        return 4 * h * (inputs + h)

    encoder = length * (2 * lstm(h) + lstm(2 * h) + (layers - 2) * lstm(h))
    attention = length * h * h + length * h * h + 2 * length * length * h
    decoder = length * (lstm(h) + (layers - 1) * lstm(2 * h) + h * vocab)
    return 3 * 2 * size["batch"] * (encoder + attention + decoder)


def _bench_config(size: dict):
    from translation.gnmt.config import Config, Model

    cfg = Config()
    return dataclasses.replace(cfg, model=Model(variant="REDUCED bench" if size is CPU_SIZE else "gnmt_v2",
                                                hidden_size=size["hidden"], num_layers=size["layers"]))


def _batch(size: dict, seed: int):
    """Random pairs [BOS] w.. [EOS] of `length` tokens (no padding: the same work for every model)."""
    import numpy as np

    from translation.bpe import BOS_ID, EOS_ID

    rng = np.random.default_rng(seed)
    source = rng.integers(4, size["vocab"], (size["batch"], size["length"]))
    target = rng.integers(4, size["vocab"], (size["batch"], size["length"] + 1))
    source[:, 0], source[:, -1], target[:, 0], target[:, -1] = BOS_ID, EOS_ID, BOS_ID, EOS_ID
    return source, target


# -- PyTorch ------------------------------------------------------------------------------------
def pytorch_throughput(size: dict, repeats: int, rounds: int, seed: int = 0) -> dict:
    import torch

    from translation.gnmt.pytorch.model import build_model, smoothed_loss

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    cfg = _bench_config(size)
    source, target = (torch.from_numpy(a).to(device) for a in _batch(size, seed))
    lengths = torch.full((size["batch"],), size["length"], dtype=torch.int64, device=device)
    ours = build_model(size["vocab"], cfg.model, seed=seed).to(device)

    class Peer(torch.nn.Module):
        """nn.LSTM stacks of the same sizes between the same embedding and classifier."""

        def __init__(self):
            super().__init__()
            self.embedder = torch.nn.Embedding(size["vocab"], size["hidden"])
            self.encoder = torch.nn.LSTM(size["hidden"], size["hidden"], size["layers"], batch_first=True, dropout=0.2)
            self.decoder = torch.nn.LSTM(size["hidden"], size["hidden"], size["layers"], batch_first=True, dropout=0.2)
            self.classifier = torch.nn.Linear(size["hidden"], size["vocab"])

        def forward(self, src, src_lengths, tgt):
            _, state = self.encoder(self.embedder(src))
            outputs, _ = self.decoder(self.embedder(tgt), state)
            return self.classifier(outputs)

    peer = Peer().to(device)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step_of(model):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(source, lengths, target[:, :-1])
            loss_sum, _ = smoothed_loss(logits, target[:, 1:], 0.1)
            (loss_sum / size["batch"]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    return pytorch_pair(ours, peer, "nn_lstm_stack", step_of, size, repeats, rounds, device, amp,
                        lambda: training_flops(size) / 1e9)


# -- TensorFlow ---------------------------------------------------------------------------------
def tensorflow_throughput(size: dict, repeats: int, rounds: int, seed: int = 0) -> dict:
    import keras
    import tensorflow as tf

    from harness.tf_optimizers import TorchAdam
    from translation.gnmt.tensorflow.model import build_model, smoothed_loss

    keras.utils.set_random_seed(seed)
    cfg = _bench_config(size)
    source, target = (tf.constant(a, tf.int32) for a in _batch(size, seed))
    lengths = tf.fill([size["batch"]], size["length"])
    ours = build_model(size["vocab"], cfg.model, seed=seed)

    src_in, tgt_in = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(size["vocab"], size["hidden"])
    x, states = embedding(src_in), []
    for _ in range(size["layers"]):  # the encoder's final states start the decoder's layers, as nn.LSTM's
        x, h, c = keras.layers.LSTM(size["hidden"], return_sequences=True, return_state=True)(keras.layers.Dropout(0.2)(x))
        states.append([h, c])
    y = embedding(tgt_in)
    for state in states:
        y = keras.layers.LSTM(size["hidden"], return_sequences=True)(keras.layers.Dropout(0.2)(y), initial_state=state)
    peer = keras.Model([src_in, tgt_in], keras.layers.Dense(size["vocab"])(y))

    def step_of(model, call):
        optimizer = TorchAdam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss_sum, _ = smoothed_loss(call(model), target[:, 1:], 0.1)
                loss = loss_sum / size["batch"]
            gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
            gradients, _ = tf.clip_by_global_norm(gradients, 5.0)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
        return step

    steps = {"ours": step_of(ours, lambda m: m(source, lengths, target[:, :-1], training=True)),
             "keras_lstm_stack": step_of(peer, lambda m: m([source, target[:, :-1]], training=True))}
    return tensorflow_pair(ours, peer, "keras_lstm_stack", steps, size, repeats, rounds)


# -- input pipeline -------------------------------------------------------------------------------
def _target_tokens(target, indices) -> int:
    """A batch's target tokens (each sentence's length less its BOS), padded as a training step reads it."""
    tokens = int(target.lengths[indices].sum()) - len(indices)
    target.pad(indices)
    return tokens


def pipeline_throughput(seconds: float = 3.0) -> dict:
    """Target tokens/s of epochs of bucketing and padding (what each training step reads) on the tiny data."""
    from translation.gnmt import dataset
    from translation.gnmt.config import Config

    return throughput.pipeline_throughput(dataset, Config, _target_tokens, seconds)


def _rate_line(framework: str, data: dict, rounds: int) -> str:
    peer = next(key for key in data if key.endswith("_tokens_per_s") and not key.startswith("ours"))
    return (f"{framework}: ours {data['ours_tokens_per_s']:,.0f} target tokens/s, {peer.removesuffix('_tokens_per_s')} "
            f"{data[peer]:,.0f}; ratio {data['ratio']:.2f} (median of {rounds} paired rounds, >1: ours faster)")


def run_bench(include_tensorflow: bool = True) -> dict:
    result = throughput.run_bench(REFERENCE, "GNMT v2", CPU_SIZE, pytorch_throughput, tensorflow_throughput,
                                  pipeline_throughput, _rate_line, include_tensorflow)
    console.print(f"pytorch: {result['pytorch']['ours_gflops']:.1f} GFLOP/s, {result['pytorch']['fraction_of_gemm_peak']:.0%} "
                  f"of the measured fp32 GEMM peak ({result['gemm_fp32']['gflops']:.0f} GFLOP/s, "
                  f"{result['gemm_fp32']['threads']} threads, {result['host_cpu']})")
    console.print(f"input pipeline: {result['pipeline']['tokens_per_s']:,.0f} target tokens/s, "
                  f"{result['pipeline']['vs_pytorch_model']:.0f}x the PyTorch model's")
    return result
