"""Weights between the PyTorch and Keras DeepSpeech2, both ways, layer by layer by name.

Layouts: convolution kernels (out, in, h, w) <-> (h, w, in, out); dense (out, in) <-> (in, out);
batch norm weight, bias, running mean and variance <-> gamma, beta, moving mean and variance; GRU
gates PyTorch (r, z, n) in rows <-> Keras (z, r, h) in columns, PyTorch's b_ih and b_hh <-> Keras'
bias rows 0 and 1 (reset_after=True).
"""

from __future__ import annotations

import numpy as np

from speech_recognition.pytorch.model import DeepSpeech2 as TorchDeepSpeech2
from speech_recognition.tensorflow.model import DeepSpeech2 as KerasDeepSpeech2


def _gates_torch_to_keras(matrix: np.ndarray) -> np.ndarray:
    """(3H, ...) rows r, z, n -> z, r, n."""
    r, z, n = np.split(matrix, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def _gates_keras_to_torch(matrix: np.ndarray) -> np.ndarray:
    z, r, n = np.split(matrix, 3, axis=0)
    return np.concatenate([r, z, n], axis=0)


def _batch_norm_names(prefix: str) -> list[str]:
    return [f"{prefix}.weight", f"{prefix}.bias", f"{prefix}.running_mean", f"{prefix}.running_var"]


def keras_weights_from_torch(state: dict) -> dict[str, list[np.ndarray]]:
    """Layer name -> Keras weight list, from a PyTorch state dict (tensors or arrays)."""
    state = {name: np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
             for name, value in state.items()}
    weights = {}
    for conv in ("conv1", "conv2"):
        weights[conv] = [state[f"{conv}.weight"].transpose(2, 3, 1, 0), state[f"{conv}.bias"]]
    for bn in ("conv1_bn", "conv2_bn", "fc_bn"):
        weights[bn] = [state[name] for name in _batch_norm_names(bn)]
    index = 0
    while f"rnns.{index}.weight_ih_l0" in state:
        prefix = f"rnns.{index}"
        weights[f"rnns_{index}"] = [
            _gates_torch_to_keras(state[f"{prefix}.weight_ih_l0"]).T,
            _gates_torch_to_keras(state[f"{prefix}.weight_hh_l0"]).T,
            np.stack([_gates_torch_to_keras(state[f"{prefix}.bias_ih_l0"]),
                      _gates_torch_to_keras(state[f"{prefix}.bias_hh_l0"])])]
        index += 1
    weights["fc"] = [state["fc.weight"].T]
    return weights


def torch_state_from_keras(model: KerasDeepSpeech2) -> dict[str, np.ndarray]:
    """A PyTorch state dict (NumPy arrays) from the Keras model's weights."""
    state = {}
    for conv in ("conv1", "conv2"):
        kernel, bias = [w.numpy() for w in getattr(model, conv).weights]
        state[f"{conv}.weight"], state[f"{conv}.bias"] = kernel.transpose(3, 2, 0, 1), bias
    for bn in ("conv1_bn", "conv2_bn", "fc_bn"):
        layer = getattr(model, bn)
        for name, variable in zip(_batch_norm_names(bn), (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)):
            state[name] = variable.numpy()
    for index, rnn in enumerate(model.rnns):
        kernel, recurrent, bias = [w.numpy() for w in rnn.weights]
        prefix = f"rnns.{index}"
        state[f"{prefix}.weight_ih_l0"] = _gates_keras_to_torch(kernel.T)
        state[f"{prefix}.weight_hh_l0"] = _gates_keras_to_torch(recurrent.T)
        state[f"{prefix}.bias_ih_l0"] = _gates_keras_to_torch(bias[0])
        state[f"{prefix}.bias_hh_l0"] = _gates_keras_to_torch(bias[1])
    state["fc.weight"] = model.fc.weights[0].numpy().T
    return state


def torch_to_keras(torch_model: TorchDeepSpeech2, keras_model: KerasDeepSpeech2) -> None:
    weights = keras_weights_from_torch(torch_model.state_dict())
    for name, values in weights.items():
        layer = keras_model.get_layer(name) if not name.startswith("rnns_") else keras_model.rnns[int(name.split("_")[1])]
        layer.set_weights([value.astype(np.asarray(current).dtype) for value, current in zip(values, layer.get_weights())])


def keras_to_torch(keras_model: KerasDeepSpeech2, torch_model: TorchDeepSpeech2) -> None:
    import torch

    state = torch_model.state_dict()
    converted = torch_state_from_keras(keras_model)
    state.update({name: torch.from_numpy(np.ascontiguousarray(value)).to(state[name].dtype)
                  for name, value in converted.items()})
    torch_model.load_state_dict(state)
