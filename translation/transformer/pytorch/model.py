"""The Transformer in PyTorch, as the MLPerf reference (mlcommons/training translation/tensorflow/
transformer/model/, after Vaswani et al. 2017, "Attention Is All You Need", with tensor2tensor's
choices that the reference keeps):

- one embedding matrix shared by the source and target embeddings and the pre-softmax linear,
  embeddings scaled by sqrt(hidden_size), padding positions zeroed (embedding_layer.py);
- sinusoidal positions, sines then cosines concatenated (model_utils.get_position_encoding);
- normalization BEFORE each sub-layer and a final layer norm on each stack (transformer.py,
  PrePostProcessingWrapper: x + dropout(sublayer(layer_norm(x))); epsilon 1e-6);
- attention projections q, k, v, output_transform without biases, queries scaled by depth^-0.5
  (attention_layer.py; here `scaled_dot_product_attention`, which scales the same way);
- the FFN filter_layer (ReLU) and output_layer with biases; the encoder FFN leaves padding
  positions at zero (ffn_layer.py removes them before the FFN);
- dropout 0.1 on the embeddings+positions, each sub-layer output, the attention weights and the
  ReLU output.

Module names and order are tensorflow/model.py's (weights.py lists them), so convert.py maps the
weights one to one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from translation.transformer.weights import initial_weights, weight_shapes
from translation.vocabulary import PAD_ID

NEG_INF = -1e9  # reference model/transformer.py _NEG_INF: the attention bias of masked positions
LAYER_NORM_EPSILON = 1e-6  # reference LayerNormalization.call(epsilon=1e-6)


def position_encoding(length: int, hidden_size: int, dtype=torch.float32, device=None,
                      min_timescale: float = 1.0, max_timescale: float = 1.0e4) -> torch.Tensor:
    """(length, hidden_size): sin(pos * inv_timescale) for the first half, cos for the second."""
    position = torch.arange(length, dtype=torch.float64, device=device)
    num_timescales = hidden_size // 2
    increment = math.log(max_timescale / min_timescale) / max(num_timescales - 1, 1)
    inv_timescales = min_timescale * torch.exp(torch.arange(num_timescales, dtype=torch.float64, device=device)
                                               * -increment)
    scaled_time = position[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1).to(dtype)


def padding_bias(ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, 1, length): NEG_INF where `ids` is padding (model_utils.get_padding_bias)."""
    return ((ids == PAD_ID).to(dtype) * NEG_INF)[:, None, None, :]


def causal_bias(length: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(1, 1, length, length): NEG_INF above the diagonal (model_utils.get_decoder_self_attention_bias)."""
    upper = torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)
    return (upper.to(dtype) * NEG_INF)[None, None]


class EmbeddingSharedWeights(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.shared_weights = nn.Parameter(torch.empty(vocab_size, hidden_size))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.shared_weights[ids] * self.hidden_size ** 0.5
        return embeddings * (ids != PAD_ID).unsqueeze(-1).to(embeddings.dtype)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax logits with the embedding matrix: (..., hidden) -> (..., vocab)."""
        return x @ self.shared_weights.t()


class Attention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, attention_dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.q = nn.Linear(hidden_size, hidden_size, bias=False)
        self.k = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, hidden_size, bias=False)
        self.output_transform = nn.Linear(hidden_size, hidden_size, bias=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        return x.view(batch, length, self.num_heads, hidden // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor | None,
                cache: dict | None = None) -> torch.Tensor:
        q, k, v = self.q(x), self.k(y), self.v(y)
        if cache is not None:  # decoding: keys and values of the earlier positions
            k = torch.cat([cache["k"], k], dim=1)
            v = torch.cat([cache["v"], v], dim=1)
            cache["k"], cache["v"] = k, v
        out = F.scaled_dot_product_attention(self.split_heads(q), self.split_heads(k), self.split_heads(v),
                                             attn_mask=bias, dropout_p=self.attention_dropout if self.training else 0.0)
        batch, _, length, _ = out.shape
        return self.output_transform(out.transpose(1, 2).reshape(batch, length, -1))


class SelfAttention(Attention):
    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, cache: dict | None = None) -> torch.Tensor:
        return super().forward(x, x, bias, cache)


class FeedForwardNetwork(nn.Module):
    def __init__(self, hidden_size: int, filter_size: int, relu_dropout: float):
        super().__init__()
        self.filter_layer = nn.Linear(hidden_size, filter_size)
        self.output_layer = nn.Linear(filter_size, hidden_size)
        self.relu_dropout = relu_dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        hidden = F.dropout(torch.relu(self.filter_layer(x)), self.relu_dropout, self.training)
        output = self.output_layer(hidden)
        return output if keep is None else output * keep  # padding positions stay zero (reference)


class PrePostProcessingWrapper(nn.Module):
    """x + dropout(layer(layer_norm(x))): the reference's normalization placement."""

    def __init__(self, layer: nn.Module, hidden_size: int, postprocess_dropout: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(hidden_size, eps=LAYER_NORM_EPSILON)
        self.layer = layer
        self.postprocess_dropout = postprocess_dropout

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        y = self.layer(self.layer_norm(x), *args, **kwargs)
        return x + F.dropout(y, self.postprocess_dropout, self.training)


class EncoderStack(nn.Module):
    def __init__(self, hidden_size: int, layers: int, num_heads: int, filter_size: int, dropouts: tuple[float, float, float]):
        super().__init__()
        postprocess, attention, relu = dropouts
        self.layers = nn.ModuleList(nn.ModuleDict({
            "self_attention": PrePostProcessingWrapper(SelfAttention(hidden_size, num_heads, attention), hidden_size, postprocess),
            "ffn": PrePostProcessingWrapper(FeedForwardNetwork(hidden_size, filter_size, relu), hidden_size, postprocess),
        }) for _ in range(layers))
        self.output_normalization = nn.LayerNorm(hidden_size, eps=LAYER_NORM_EPSILON)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer["self_attention"](x, bias)
            x = layer["ffn"](x, keep)
        return self.output_normalization(x)


class DecoderStack(nn.Module):
    def __init__(self, hidden_size: int, layers: int, num_heads: int, filter_size: int, dropouts: tuple[float, float, float]):
        super().__init__()
        postprocess, attention, relu = dropouts
        self.layers = nn.ModuleList(nn.ModuleDict({
            "self_attention": PrePostProcessingWrapper(SelfAttention(hidden_size, num_heads, attention), hidden_size, postprocess),
            "encdec_attention": PrePostProcessingWrapper(Attention(hidden_size, num_heads, attention), hidden_size, postprocess),
            "ffn": PrePostProcessingWrapper(FeedForwardNetwork(hidden_size, filter_size, relu), hidden_size, postprocess),
        }) for _ in range(layers))
        self.output_normalization = nn.LayerNorm(hidden_size, eps=LAYER_NORM_EPSILON)

    def forward(self, x: torch.Tensor, encoder_outputs: torch.Tensor, self_bias: torch.Tensor | None,
                encdec_bias: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        for n, layer in enumerate(self.layers):
            layer_cache = cache[f"layer_{n}"] if cache is not None else None
            x = layer["self_attention"](x, self_bias, layer_cache)
            x = layer["encdec_attention"](x, encoder_outputs, encdec_bias)
            x = layer["ffn"](x)
        return self.output_normalization(x)


class Transformer(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, num_hidden_layers: int, num_heads: int, filter_size: int,
                 layer_postprocess_dropout: float = 0.1, attention_dropout: float = 0.1, relu_dropout: float = 0.1):
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.postprocess_dropout = layer_postprocess_dropout
        dropouts = (layer_postprocess_dropout, attention_dropout, relu_dropout)
        self.embedding_softmax_layer = EmbeddingSharedWeights(vocab_size, hidden_size)
        self.encoder_stack = EncoderStack(hidden_size, num_hidden_layers, num_heads, filter_size, dropouts)
        self.decoder_stack = DecoderStack(hidden_size, num_hidden_layers, num_heads, filter_size, dropouts)

    def load_numpy(self, weights: dict[str, np.ndarray]) -> None:
        """Copy arrays named as in the state_dict (weights.initial_weights, the converter) in place."""
        self.load_state_dict({name: torch.as_tensor(np.asarray(value)).to(self.embedding_softmax_layer.shared_weights.dtype)
                              for name, value in weights.items()})

    def encode(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder outputs (batch, length, hidden), attention bias (batch, 1, 1, length))."""
        embedded = self.embedding_softmax_layer(inputs)
        bias = padding_bias(inputs, embedded.dtype)
        x = embedded + position_encoding(inputs.shape[1], self.hidden_size, embedded.dtype, inputs.device)
        x = F.dropout(x, self.postprocess_dropout, self.training)
        keep = (inputs != PAD_ID).unsqueeze(-1).to(embedded.dtype)
        return self.encoder_stack(x, bias, keep), bias

    def decode(self, targets: torch.Tensor, encoder_outputs: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, length, vocab): targets shifted right by one position."""
        embedded = self.embedding_softmax_layer(targets)
        x = F.pad(embedded, (0, 0, 1, 0))[:, :-1]
        length = x.shape[1]
        x = x + position_encoding(length, self.hidden_size, x.dtype, x.device)
        x = F.dropout(x, self.postprocess_dropout, self.training)
        outputs = self.decoder_stack(x, encoder_outputs, causal_bias(length, x.dtype, x.device), bias)
        return self.embedding_softmax_layer.linear(outputs)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        encoder_outputs, bias = self.encode(inputs)
        return self.decode(targets, encoder_outputs, bias)

    # -- decoding, one position at a time (beam search) -----------------------------------------
    def initial_cache(self, encoder_outputs: torch.Tensor, bias: torch.Tensor) -> dict:
        batch = encoder_outputs.shape[0]
        empty = encoder_outputs.new_zeros(batch, 0, self.hidden_size)
        cache = {f"layer_{n}": {"k": empty, "v": empty} for n in range(self.num_hidden_layers)}
        cache["encoder_outputs"], cache["encoder_decoder_attention_bias"] = encoder_outputs, bias
        return cache

    def decode_step(self, ids: torch.Tensor, step: int, cache: dict) -> tuple[torch.Tensor, dict]:
        """Logits (batch, vocab) of the next token after `ids` (batch, step + 1); updates `cache`."""
        x = self.embedding_softmax_layer(ids[:, -1:])
        x = x + position_encoding(step + 1, self.hidden_size, x.dtype, x.device)[step:step + 1]
        outputs = self.decoder_stack(x, cache["encoder_outputs"], None, cache["encoder_decoder_attention_bias"], cache)
        return self.embedding_softmax_layer.linear(outputs)[:, 0], cache


def build_model(vocab_size: int, model_cfg, seed: int, dtype=torch.float32) -> Transformer:
    """The Transformer with the reference initialisation drawn from `seed` (the TensorFlow model's too)."""
    model = Transformer(vocab_size, model_cfg.hidden_size, model_cfg.num_hidden_layers, model_cfg.num_heads,
                        model_cfg.filter_size, model_cfg.layer_postprocess_dropout, model_cfg.attention_dropout,
                        model_cfg.relu_dropout).to(dtype)
    shapes = weight_shapes(vocab_size, model_cfg.hidden_size, model_cfg.num_hidden_layers, model_cfg.filter_size)
    assert {name: tuple(p.shape) for name, p in model.state_dict().items()} == shapes
    model.load_numpy(initial_weights(vocab_size, model_cfg.hidden_size, model_cfg.num_hidden_layers,
                                     model_cfg.filter_size, seed))
    return model


def smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of per-token losses, number of real tokens), the reference's `padded_cross_entropy_loss`
    (utils/metrics.py): soft targets 1 - smoothing on the label and smoothing / (V - 1) elsewhere,
    minus the entropy of that distribution (so a perfect prediction scores 0), padding ignored."""
    vocab = logits.shape[-1]
    confidence, low = 1.0 - smoothing, smoothing / (vocab - 1)
    log_probs = F.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
    label = log_probs.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    xent = -(confidence - low) * label - low * log_probs.sum(-1)
    normalizing = -(confidence * math.log(confidence) + (vocab - 1) * low * math.log(low + 1e-20))
    weights = (targets != PAD_ID).to(xent.dtype)
    return ((xent - normalizing) * weights).sum(), weights.sum()
