"""GNMT v2 in PyTorch, as the MLPerf reference (mlcommons/training rnn_translator/pytorch/seq2seq/
models/: gnmt.py, encoder.py, decoder.py, attention.py; after Wu et al. 2016, "Google's Neural
Machine Translation System", with the gnmt_v2 attention of tensorflow/nmt):

- one embedding shared by the encoder and the decoder (`embedder`, padding id 0);
- encoder: a bidirectional LSTM (over the real tokens only: packed sequences), an LSTM on its 2h
  outputs, then layers-2 LSTMs with residual connections (from the third layer on); dropout on
  the input of every LSTM layer;
- decoder: the first LSTM's output queries a normalized Bahdanau attention over the encoder
  outputs (padding masked); the attention context is concatenated to the input of every later
  LSTM layer (gnmt_v2), residual connections from the third layer; dropout on every LSTM input; a
  linear classifier with bias onto the vocabulary;
- LSTM states start at zero; `nn.LSTM` (cuDNN on GPUs, oneDNN on CPUs).

Tensors are batch-major here (the reference is time-major: the same arithmetic). Module names
are the reference's (weights.py lists them) and tensorflow/model.py's, so convert.py maps the
weights one to one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from translation.bpe import PAD_ID
from translation.gnmt.weights import initial_weights, weight_shapes

MASKED_SCORE = -65504.0  # reference attention.py: "I can't use -INF because of overflow check in pytorch"


class BahdanauAttention(nn.Module):
    """Normalized Bahdanau attention (reference attention.py, normalize=True): score(q, k) =
    g * v / |v| . tanh(W_q q + W_k k + b); softmax over the source; context = weights . keys."""

    def __init__(self, query_size: int, key_size: int, num_units: int):
        super().__init__()
        self.linear_q = nn.Linear(query_size, num_units, bias=False)
        self.linear_k = nn.Linear(key_size, num_units, bias=False)
        self.linear_att = nn.Parameter(torch.empty(num_units))
        self.normalize_scalar = nn.Parameter(torch.empty(1))
        self.normalize_bias = nn.Parameter(torch.empty(num_units))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, processed_keys: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (b, t_q, n), keys (b, t_k, n), processed_keys = linear_k(keys), mask (b, t_k) True on
        padding -> (context (b, t_q, n), weights (b, t_q, t_k))."""
        processed_query = self.linear_q(query)
        sum_qk = processed_query.unsqueeze(2) + processed_keys.unsqueeze(1) + self.normalize_bias
        linear_att = self.linear_att / self.linear_att.norm() * self.normalize_scalar
        scores = torch.tanh(sum_qk).matmul(linear_att)
        scores = scores.masked_fill(mask.unsqueeze(1), MASKED_SCORE)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class RecurrentAttention(nn.Module):
    """The decoder's first LSTM and the attention it queries (reference decoder.py)."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(hidden_size, hidden_size, num_layers=1, batch_first=True)
        self.attn = BahdanauAttention(hidden_size, hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs, hidden, keys, processed_keys, mask):
        outputs, hidden = self.rnn(self.dropout(inputs), hidden)
        context, scores = self.attn(outputs, keys, processed_keys, mask)
        return outputs, hidden, context, scores


class Classifier(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.classifier = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


class ResidualRecurrentEncoder(nn.Module):
    def __init__(self, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.rnn_layers = nn.ModuleList([nn.LSTM(hidden_size, hidden_size, batch_first=True, bidirectional=True),
                                         nn.LSTM(2 * hidden_size, hidden_size, batch_first=True)])
        self.rnn_layers.extend(nn.LSTM(hidden_size, hidden_size, batch_first=True) for _ in range(num_layers - 2))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (b, t, h) embedded source, lengths (b,) -> outputs (b, t, h); padding positions of the
        bidirectional layer are zero (pad_packed_sequence), later layers run over them (masked later)."""
        total = x.shape[1]
        packed = pack_padded_sequence(self.dropout(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        x, _ = pad_packed_sequence(self.rnn_layers[0](packed)[0], batch_first=True, total_length=total)
        x, _ = self.rnn_layers[1](self.dropout(x))
        for layer in self.rnn_layers[2:]:
            residual = x
            x, _ = layer(self.dropout(x))
            x = x + residual
        return x


class ResidualRecurrentDecoder(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.att_rnn = RecurrentAttention(hidden_size, dropout)
        self.rnn_layers = nn.ModuleList(nn.LSTM(2 * hidden_size, hidden_size, batch_first=True)
                                        for _ in range(num_layers - 1))
        self.classifier = Classifier(hidden_size, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, processed_keys: torch.Tensor, mask: torch.Tensor,
                hidden: list | None = None) -> tuple[torch.Tensor, torch.Tensor, list]:
        """x (b, t, h) embedded decoder inputs -> (logits (b, t, vocab), attention (b, t, t_k),
        the (h, c) state of every layer)."""
        hidden = hidden or [None] * (len(self.rnn_layers) + 1)
        x, state, context, scores = self.att_rnn(x, hidden[0], keys, processed_keys, mask)
        states = [state]
        x, state = self.rnn_layers[0](self.dropout(torch.cat((x, context), dim=2)), hidden[1])
        states.append(state)
        for index, layer in enumerate(self.rnn_layers[1:], start=2):
            residual = x
            x, state = layer(self.dropout(torch.cat((x, context), dim=2)), hidden[index])
            states.append(state)
            x = x + residual
        return self.classifier(x), scores, states


class GNMT(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int = 1024, num_layers: int = 4, dropout: float = 0.2):
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embedder = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD_ID)
        self.encoder = ResidualRecurrentEncoder(hidden_size, num_layers, dropout)
        self.decoder = ResidualRecurrentDecoder(vocab_size, hidden_size, num_layers, dropout)

    def load_numpy(self, weights: dict[str, np.ndarray]) -> None:
        """Copy arrays named as in the state_dict (weights.initial_weights, the converter) in place."""
        dtype = self.embedder.weight.dtype
        self.load_state_dict({name: torch.as_tensor(np.asarray(value)).to(dtype) for name, value in weights.items()})

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(encoder outputs (b, t, h), their attention keys linear_k(outputs), padding mask (b, t))."""
        outputs = self.encoder(self.embedder(source), lengths)
        mask = torch.arange(source.shape[1], device=source.device).unsqueeze(0) >= lengths.unsqueeze(1)
        return outputs, self.decoder.att_rnn.attn.linear_k(outputs), mask

    def forward(self, source: torch.Tensor, lengths: torch.Tensor, decoder_inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (b, t, vocab): decoder_inputs is the target without its last token
        (BOS first), the labels the target without its first (reference trainer.py)."""
        keys, processed_keys, mask = self.encode(source, lengths)
        logits, _, _ = self.decoder(self.embedder(decoder_inputs), keys, processed_keys, mask)
        return logits

    # -- decoding, one token at a time (translation/beam_search_gnmt_pytorch.py) ----------------
    def initial_cache(self, source: torch.Tensor, lengths: torch.Tensor) -> dict:
        keys, processed_keys, mask = self.encode(source, lengths)
        zeros = keys.new_zeros(source.shape[0], self.num_layers, self.hidden_size)
        return {"keys": keys, "processed_keys": processed_keys, "mask": mask, "h": zeros, "c": zeros}

    def decode_step(self, words: torch.Tensor, cache: dict) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """(logits (n, vocab), cache with the new states, attention (n, t)) of the next token after `words` (n,)."""
        hidden = [(cache["h"][:, i].unsqueeze(0).contiguous(), cache["c"][:, i].unsqueeze(0).contiguous())
                  for i in range(self.num_layers)]
        logits, scores, states = self.decoder(self.embedder(words.unsqueeze(1)), cache["keys"], cache["processed_keys"],
                                              cache["mask"], hidden)
        h = torch.stack([state[0][0] for state in states], dim=1)
        c = torch.stack([state[1][0] for state in states], dim=1)
        return logits[:, 0], {**cache, "h": h, "c": c}, scores[:, 0]


def build_model(vocab_size: int, model_cfg, seed: int, dtype=torch.float32) -> GNMT:
    """GNMT with the reference initialisation drawn from `seed` (the TensorFlow model's too)."""
    model = GNMT(vocab_size, model_cfg.hidden_size, model_cfg.num_layers, model_cfg.dropout).to(dtype)
    shapes = weight_shapes(vocab_size, model_cfg.hidden_size, model_cfg.num_layers)
    assert {name: tuple(p.shape) for name, p in model.state_dict().items()} == shapes
    model.load_numpy(initial_weights(vocab_size, model_cfg.hidden_size, model_cfg.num_layers, seed, model_cfg.init_weight))
    return model


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over real tokens of the reference's label-smoothed loss, number of real tokens)
    (seq2seq/train/smoothing.py LabelSmoothing): (1 - s) * -log p(label) + s * mean over the
    vocabulary of -log p, padding ignored; log-softmax in float32 (or float64 when given)."""
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float64 if logits.dtype == torch.float64 else torch.float32)
    nll = -log_probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    smooth = -log_probs.mean(dim=-1)
    weights = (labels != PAD_ID).to(log_probs.dtype)
    return (((1.0 - smoothing) * nll + smoothing * smooth) * weights).sum(), weights.sum()
