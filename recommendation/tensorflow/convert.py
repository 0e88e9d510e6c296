"""NeuMF weights between PyTorch and Keras, one to one (the layer names are the same in both models).

The interchange format is the PyTorch `state_dict` as NumPy arrays (recommendation/weights.py names
and layouts): an embedding table is the same array in both frameworks; an nn.Linear `weight` is
(out, in) where a Dense `kernel` is (in, out), so it is transposed; biases are copied.

    state = keras_to_torch_layout(keras_model)        # {"mlp.0.weight": (256, 256) array, ...}
    load_torch_layout(keras_model, state)              # the other way
    torch_to_keras(torch_model, keras_model)           # module to model (imports torch lazily)
    keras_to_torch(keras_model, torch_model)

    python -m recommendation.tensorflow.convert torch_state.pt neumf.weights.h5   # a state_dict or a
    python -m recommendation.tensorflow.convert neumf.weights.h5 model_state.pt    # harness payload

Nothing here imports torch at module level, so the TensorFlow image needs no PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.convert import DENSE, Row, Table, command_line
from harness.errors import UserError

if TYPE_CHECKING:
    import keras

EMBEDDINGS = ("mf_user_embed", "mf_item_embed", "mlp_user_embed", "mlp_item_embed")


def _variables(model: keras.Model) -> Iterator[Row]:
    """The name table (harness/convert.py): every parameter in PyTorch's order."""
    for name in EMBEDDINGS:
        yield Row(f"{name}.weight", getattr(model, name).embeddings)
    for layer in [*model.mlp, model.final]:
        yield Row(f"{layer.name}.weight", layer.kernel, DENSE)  # layer.name is "mlp.<i>" or "final"
        yield Row(f"{layer.name}.bias", layer.bias)


NEUMF_WEIGHTS = Table("NeuMF", _variables)
keras_to_torch_layout, load_torch_layout = NEUMF_WEIGHTS.keras_to_torch_layout, NEUMF_WEIGHTS.load_torch_layout
torch_to_keras, keras_to_torch = NEUMF_WEIGHTS.torch_to_keras, NEUMF_WEIGHTS.keras_to_torch


def sizes_from_state(state: dict[str, np.ndarray]) -> dict:
    """The NeuMF constructor arguments a state_dict implies (users, items, factors, MLP sizes); a
    KeyError, ValueError or AttributeError where it is not a NeuMF state_dict."""
    n_users, factors = state["mf_user_embed.weight"].shape
    n_items = state["mf_item_embed.weight"].shape[0]
    layers = sorted(int(name.split(".")[1]) for name in state if name.startswith("mlp.") and name.endswith(".weight"))
    sizes = [2 * state["mlp_user_embed.weight"].shape[1]] + [state[f"mlp.{index}.weight"].shape[0] for index in layers]
    return {"n_users": int(n_users), "n_items": int(n_items), "factors": int(factors),
            "mlp_layer_sizes": tuple(int(size) for size in sizes)}


def convert_file(source: str | Path, destination: str | Path) -> Path:
    """`.pt` (a state_dict or a harness torch payload) -> Keras `.weights.h5`, or the reverse."""
    from recommendation.tensorflow.model import NeuMF

    return NEUMF_WEIGHTS.convert_file(source, destination, NeuMF, sizes_from_state, sizes_from_keras_file)


def sizes_from_keras_file(path: str | Path) -> dict:
    """The NeuMF sizes stored in a Keras 3 `.weights.h5`: Keras files a model's layers by class under
    `layers/embedding[_k]/vars/0` and `layers/dense[_k]/vars/{0,1}` in creation order (model.py
    creates them in PyTorch's order), the float32 `final` Dense under `final/vars`."""
    import h5py

    def numbered(group, prefix: str) -> list:
        names = [name for name in group if name == prefix or name.startswith(prefix + "_")]
        return [group[name]["vars"]["0"].shape for name in
                sorted(names, key=lambda name: int(name[len(prefix) + 1:] or 0))]

    try:
        with h5py.File(path, "r") as handle:
            embeddings, kernels = numbered(handle["layers"], "embedding"), numbered(handle["layers"], "dense")
            final = handle["final"]["vars"]["0"].shape
    except (OSError, KeyError) as error:
        raise UserError(f"{path}: not a Keras NeuMF weights file ({error})") from None
    if len(embeddings) != 4 or not kernels or final[1] != 1:
        raise UserError(f"{path}: not a Keras NeuMF weights file ({len(embeddings)} embeddings, "
                        f"{len(kernels)} hidden layers)")
    (n_users, factors), (n_items, _), (_, half) = embeddings[0], embeddings[1], embeddings[2]
    return {"n_users": int(n_users), "n_items": int(n_items), "factors": int(factors),
            "mlp_layer_sizes": (2 * int(half), *(int(shape[1]) for shape in kernels))}


def main(argv: list[str] | None = None) -> int:
    return command_line(argv, "python -m recommendation.tensorflow.convert", __doc__, convert_file, both_ways=True)


if __name__ == "__main__":
    raise SystemExit(main())
