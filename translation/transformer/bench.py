"""`invoke bench transformer`: is our Transformer as fast as the frameworks' own, and is the input fast enough?

- training target tokens/s (forward, label-smoothed loss, backward, Adam step) of pytorch/model.py
  against `torch.nn.Transformer` of the same size (pre-norm, the same shared embedding and
  pre-softmax matrix around it), and of tensorflow/model.py against a Keras model of the same size
  built from `keras.layers.MultiHeadAttention`; same batch, the two models of a pair alternating
  rounds in one process; the ratio is the median over rounds of the ratio of adjacent timings, so
  load that comes and goes on a shared machine favours neither model (translation/throughput.py);
- the FLOP/s our PyTorch step achieves (forward + backward FLOPs counted by torch's FlopCounterMode)
  next to the machine's measured fp32 GEMM throughput;
- the input pipeline's tokens/s (length batching + padding, batching.py) against the model's.

The size: Transformer big on a GPU (4096 tokens a batch); on a CPU a mid-size model (d_model 256,
2 + 2 layers, labelled in the output), since one step of the big model takes a minute there.
"""

from __future__ import annotations

from translation import throughput
from translation.throughput import pytorch_pair, tensorflow_pair

BIG = {"vocab": 33708, "hidden": 1024, "layers": 6, "heads": 16, "filter": 4096, "batch": 128, "length": 32}
CPU_SIZE = {"vocab": 8000, "hidden": 256, "layers": 2, "heads": 4, "filter": 1024, "batch": 32, "length": 32}


# -- PyTorch ------------------------------------------------------------------------------------
def pytorch_throughput(size: dict, repeats: int, rounds: int, seed: int = 0) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from translation.transformer.config import Model
    from translation.transformer.pytorch.model import build_model, smoothed_cross_entropy

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(seed)
    source = torch.randint(3, size["vocab"], (size["batch"], size["length"]), device=device)
    target = torch.randint(3, size["vocab"], (size["batch"], size["length"]), device=device)
    cfg = Model(variant="REDUCED bench", hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                num_heads=size["heads"], filter_size=size["filter"])
    ours = build_model(size["vocab"], cfg, seed=seed).to(device)

    class Peer(torch.nn.Module):
        """torch.nn.Transformer of the same size, pre-norm, between the same shared embedding and logits."""

        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Parameter(torch.randn(size["vocab"], size["hidden"]) * size["hidden"] ** -0.5)
            self.transformer = torch.nn.Transformer(size["hidden"], size["heads"], size["layers"], size["layers"],
                                                    size["filter"], dropout=0.1, batch_first=True, norm_first=True)

        def forward(self, src, tgt):
            scale = size["hidden"] ** 0.5
            shifted = F.pad(self.embedding[tgt] * scale, (0, 0, 1, 0))[:, :-1]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=src.device)
            out = self.transformer(self.embedding[src] * scale, shifted, tgt_mask=mask, tgt_is_causal=True)
            return out @ self.embedding.t()

    peer = Peer().to(device)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step_of(model):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.997), eps=1e-9)

        def step():
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(source, target)
            loss_sum, tokens = smoothed_cross_entropy(logits, target, 0.1)
            (loss_sum / tokens).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    def gflop_per_step() -> float:
        """Forward + backward FLOPs of our step, counted by torch (after the timing: its gradients go unused)."""
        with FlopCounterMode(display=False) as counter:
            logits = ours(source, target)
            smoothed_cross_entropy(logits, target, 0.1)[0].backward()
        return counter.get_total_flops() / 1e9

    return pytorch_pair(ours, peer, "torch_nn_transformer", step_of, size, repeats, rounds, device, amp, gflop_per_step)


# -- TensorFlow ---------------------------------------------------------------------------------
def tensorflow_throughput(size: dict, repeats: int, rounds: int, seed: int = 0) -> dict:
    import keras
    import tensorflow as tf

    from harness.tf_optimizers import TorchAdam
    from translation.transformer.config import Model
    from translation.transformer.tensorflow.model import build_model, smoothed_cross_entropy

    keras.utils.set_random_seed(seed)
    rng = tf.random.Generator.from_seed(seed)
    source = rng.uniform((size["batch"], size["length"]), 3, size["vocab"], tf.int32)
    target = rng.uniform((size["batch"], size["length"]), 3, size["vocab"], tf.int32)
    cfg = Model(variant="REDUCED bench", hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                num_heads=size["heads"], filter_size=size["filter"])
    ours = build_model(size["vocab"], cfg, seed=seed)
    hidden, heads, depth = size["hidden"], size["heads"], size["hidden"] // size["heads"]

    def block(x, context=None, causal=False):
        """Pre-norm residual sub-layers from keras.layers (MultiHeadAttention, Dense, LayerNormalization)."""
        y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        y = keras.layers.MultiHeadAttention(heads, depth, dropout=0.1)(y, y, use_causal_mask=causal)
        x = x + keras.layers.Dropout(0.1)(y)
        if context is not None:
            y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
            x = x + keras.layers.Dropout(0.1)(keras.layers.MultiHeadAttention(heads, depth, dropout=0.1)(y, context))
        y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        y = keras.layers.Dense(hidden)(keras.layers.Dropout(0.1)(keras.layers.Dense(size["filter"], activation="relu")(y)))
        return x + keras.layers.Dropout(0.1)(y)

    src_in, tgt_in = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(size["vocab"], hidden)
    x = embedding(src_in) * hidden ** 0.5
    for _ in range(size["layers"]):
        x = block(x)
    context = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    y = embedding(tgt_in) * hidden ** 0.5
    for _ in range(size["layers"]):
        y = block(y, context, causal=True)
    y = keras.layers.LayerNormalization(epsilon=1e-6)(y)
    logits = keras.ops.matmul(y, keras.ops.transpose(embedding.embeddings))
    peer = keras.Model([src_in, tgt_in], logits)

    def step_of(model, call):
        optimizer = TorchAdam(learning_rate=1e-4, beta_1=0.9, beta_2=0.997, epsilon=1e-9)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss_sum, tokens = smoothed_cross_entropy(call(model), target, 0.1)
                loss = loss_sum / tokens
            gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
        return step

    steps = {"ours": step_of(ours, lambda m: m(source, target, training=True)),
             "keras_multiheadattention": step_of(peer, lambda m: m([source, target], training=True))}
    return tensorflow_pair(ours, peer, "keras_multiheadattention", steps, size, repeats, rounds)


# -- input pipeline -------------------------------------------------------------------------------
def _target_tokens(target, indices) -> int:
    """A batch's padded target positions (what a training step reads)."""
    return target.pad(indices).size


def pipeline_throughput(seconds: float = 3.0) -> dict:
    """Target tokens/s of one epoch's batching and padding (batching.py) on the tiny data."""
    from translation.transformer import dataset
    from translation.transformer.config import Config

    return throughput.pipeline_throughput(dataset, Config, _target_tokens, seconds)


def _rate_line(framework: str, data: dict, rounds: int) -> str:
    return f"{framework}: ours {data['ours_tokens_per_s']:,.0f} target tokens/s, ratio to the peer {data['ratio']:.2f} (median of {rounds} paired rounds)"


def run_bench(include_tensorflow: bool = True) -> dict:
    return throughput.run_bench(BIG, "Transformer big", CPU_SIZE, pytorch_throughput, tensorflow_throughput,
                                pipeline_throughput, _rate_line, include_tensorflow)
