"""Weights between a PyTorch `state_dict` and a Keras model, driven by one name table per model.

Each benchmark's `tensorflow/convert.py` lists its model's weights as rows
`Row(PyTorch state_dict name, Keras variable, layout)`, in PyTorch's order; the rest is written
once, here:

- layouts: `DENSE` (nn.Linear / nn.LSTM `weight` (out, in) <-> Dense / LSTM `kernel` (in, out)),
  `CONV` (Conv2d OIHW <-> Conv2D HWIO; ConvTranspose2d (in, out, kH, kW) <-> Conv2DTranspose
  (kH, kW, out, in) is the same permutation), `layout_by_rank` and `rows_by_path` for tables read
  off Keras variable paths, `layer_rows` for tables built layer by layer,
  `Layout` for anything else (a GRU's gate order);
- `Table(model_name, rows)`: a model's `keras_to_torch_layout`, `load_torch_layout`,
  `torch_to_keras` and `keras_to_torch`, from its rows;
- `torch_layout(rows)`: the Keras weights as a PyTorch state_dict of NumPy arrays;
- `load_torch_layout(rows, state, model_name)`: the other way, strict both ways (every name there,
  none left over, every shape right, checked before anything is assigned); a wrong file is one
  line, a `UserError` naming the model and the parameter;
- `as_numpy`, `to_torch_state_dict`, `read_torch_file`: tensors <-> arrays, and the `.pt` files the
  command-line converters read (`Table.convert_file`, `command_line`).

BatchNorm's `num_batches_tracked` counts updates and matters only for momentum=None (cumulative
averaging), which no model here uses; Keras has no such variable. A table lists it as
`counter(name)`: written as int64 0, never read; `ignore_counters=True` skips every counter in a
state_dict being loaded.

Only NumPy is imported at module level, so the TensorFlow image needs no PyTorch (torch is imported
inside the functions that write torch tensors or read `.pt` files, Keras inside `layer_rows`): a
row's variable needs only `shape`, `dtype`, `numpy()` and `assign()`.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from harness.errors import UserError, exit_on_user_error

NUM_BATCHES_TRACKED = "num_batches_tracked"
# Keras variable name -> PyTorch parameter / buffer name, for tables read off Keras variable paths
KERAS_TO_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                       "moving_mean": "running_mean", "moving_variance": "running_var"}


class Layout(NamedTuple):
    """How a PyTorch array becomes its Keras variable's value (`to_keras`) and back (`to_torch`)."""

    to_keras: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


def permutation(*axes: int) -> Layout:
    """The layout that transposes PyTorch's axes into Keras' order `axes` (and back by the inverse)."""
    inverse = tuple(int(axis) for axis in np.argsort(axes))
    return Layout(lambda array: array.transpose(axes), lambda array: array.transpose(inverse))


DENSE = permutation(1, 0)
CONV = permutation(2, 3, 1, 0)


def layout_by_rank(shape: tuple) -> Layout | None:
    """The layout of a convolution (rank 4) or dense (rank 2) kernel; None (copied) for vectors."""
    return {4: CONV, 2: DENSE}.get(len(shape))


class Row(NamedTuple):
    """One weight: its PyTorch name, its Keras variable (None for a `counter`), its layout (None: the same array)."""

    name: str
    variable: Any
    layout: Layout | None = None


def counter(name: str) -> Row:
    """A BatchNorm `num_batches_tracked` with no Keras twin: written as int64 0, never read."""
    return Row(name, None)


def rows_by_path(variables: Iterable, torch_key: Callable[[str], str]) -> Iterator[Row]:
    """The name table of a model whose Keras variable paths spell its PyTorch keys (`torch_key(path)`,
    PyTorch's order): kernels laid out by rank, a `counter` after each BatchNorm's running_var (its
    last buffer, as torch orders them)."""
    for variable in variables:
        key = torch_key(variable.path)
        yield Row(key, variable, layout_by_rank(variable.shape))
        if key.endswith(".running_var"):
            yield counter(key.rsplit(".", 1)[0] + "." + NUM_BATCHES_TRACKED)


def layer_rows(layer, prefix: str) -> Iterator[Row]:
    """The weights of a Keras Conv2D, Dense or BatchNormalization layer under the PyTorch module name
    `prefix`, in torch's order (weight, bias; running_mean, running_var), those the layer has (a
    batch norm without scale or center has no weight or bias in either framework)."""
    import keras  # here, not at import: this module is NumPy only

    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        yield Row(f"{prefix}.weight", layer.kernel, layout_by_rank(layer.kernel.shape))
        if layer.bias is not None:
            yield Row(f"{prefix}.bias", layer.bias)
    elif isinstance(layer, keras.layers.BatchNormalization):
        for keras_name in ("gamma", "beta", "moving_mean", "moving_variance"):
            variable = getattr(layer, keras_name, None)
            if variable is not None:
                yield Row(f"{prefix}.{KERAS_TO_TORCH_NAME[keras_name]}", variable)
    else:
        raise TypeError(f"no PyTorch layout for {type(layer).__name__} ({prefix})")


class Part:
    """Row `index` of a Keras variable that holds several PyTorch arrays (a GRU's bias holds
    b_ih and b_hh): usable as a row's variable."""

    def __init__(self, variable, index: int):
        self.variable, self.index = variable, index
        self.shape, self.dtype = tuple(variable.shape)[1:], variable.dtype

    def numpy(self) -> np.ndarray:
        return np.asarray(self.variable.numpy())[self.index]

    def assign(self, value: np.ndarray) -> None:
        whole = np.array(self.variable.numpy())
        whole[self.index] = value
        self.variable.assign(whole)


def as_numpy(value: Any) -> np.ndarray:
    """A PyTorch tensor (without importing torch) or an array as NumPy; bfloat16, which NumPy has
    not, as float32 (exact)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    return np.asarray(value)


def torch_layout(rows: Iterable[Row], dtype=None) -> dict[str, np.ndarray]:
    """The rows' Keras variables as a PyTorch state_dict of NumPy arrays, in the rows' order, in
    `dtype` (None: each variable's own)."""
    state = {}
    for row in rows:
        if row.variable is None:
            state[row.name] = np.array(0, dtype=np.int64)
            continue
        value = np.asarray(row.variable.numpy(), dtype=dtype)
        state[row.name] = np.ascontiguousarray(row.layout.to_torch(value)) if row.layout else value
    return state


def _few(names: list[str], shown: int = 5) -> str:
    return f"{names[:shown]}" + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _torch_shape(row: Row) -> tuple:
    shape = tuple(row.variable.shape)
    return tuple(row.layout.to_torch(np.broadcast_to(np.zeros((), np.int8), shape)).shape) if row.layout else shape


def load_torch_layout(rows: Iterable[Row], state: Mapping[str, Any], model_name: str, *, prefix: str = "",
                      ignore_counters: bool = False) -> None:
    """Assign PyTorch-layout arrays (or tensors) to the rows' Keras variables: the rows whose name
    starts with `prefix`, read from `state` under the name without it. Every such name must be in
    `state`, and nothing else (counters aside), each with its shape; all is checked before any
    variable changes, and a mismatch is one `UserError` line naming `model_name` and the weight."""
    rows = [row for row in rows if row.name.startswith(prefix)]
    weights = {row.name[len(prefix):]: row for row in rows if row.variable is not None}
    skipped = {row.name[len(prefix):] for row in rows if row.variable is None}
    given = {name for name in state if name not in skipped
             and not (ignore_counters and name.rsplit(".", 1)[-1] == NUM_BATCHES_TRACKED)}
    missing, unexpected = sorted(weights.keys() - given), sorted(given - weights.keys())
    if missing or unexpected:
        raise UserError(f"{model_name} weights: missing {_few(missing)}, unexpected {_few(unexpected)}")
    values = []
    for name, row in weights.items():
        array = as_numpy(state[name])
        value = row.layout.to_keras(array) if row.layout else array
        if tuple(value.shape) != tuple(row.variable.shape):
            raise UserError(f"{model_name} weights: {name} has shape {tuple(array.shape)}, the model needs {_torch_shape(row)}")
        values.append((row.variable, value))
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))


_TABLE_DTYPE = object()  # keras_to_torch_layout's default: the dtype the table was made with


class Table:
    """One model's name table, `rows(keras_model)` (its weights as Rows, in PyTorch's order), and the
    conversions a table-driven converter offers; a model's `convert.py` binds them under its names."""

    def __init__(self, model_name: str, rows: Callable[[Any], Iterable[Row]], *, dtype=None):
        self.model_name, self.rows, self.dtype = model_name, rows, dtype

    def keras_to_torch_layout(self, model, dtype=_TABLE_DTYPE) -> dict[str, np.ndarray]:
        """The Keras model's weights as a PyTorch state_dict of NumPy arrays, in `dtype`; by default
        the table's (None: the variables' own, float32 for a float32 model, float64 for a float64 one)."""
        return torch_layout(self.rows(model), self.dtype if dtype is _TABLE_DTYPE else dtype)

    def load_torch_layout(self, model, state: Mapping[str, Any], prefix: str = "") -> None:
        """Assign PyTorch-layout arrays or tensors to the Keras model, strictly (`load_torch_layout`)."""
        load_torch_layout(self.rows(model), state, self.model_name, prefix=prefix)

    def torch_to_keras(self, torch_model, keras_model) -> None:
        """Copy a PyTorch model into the Keras model of the same sizes."""
        self.load_torch_layout(keras_model, torch_model.state_dict())

    def keras_to_torch(self, keras_model, torch_model) -> None:
        """Copy a Keras model into the PyTorch model of the same sizes (its `load_numpy`, which
        casts to the model's dtype)."""
        torch_model.load_numpy(self.keras_to_torch_layout(keras_model, None))

    def convert_file(self, source: str | Path, destination: str | Path, build: Callable[..., Any],
                     sizes_from_state: Callable[[dict], dict], sizes_from_keras_file: Callable[[Path], dict] | None = None) -> Path:
        """`.pt` (a state_dict or a harness checkpoint payload) -> Keras `.weights.h5`, and `.weights.h5` -> `.pt`
        where `sizes_from_keras_file` is given. `build(**sizes)` makes the Keras model of the sizes
        `sizes_from_state(state)` reads off a state_dict (its KeyError, ValueError or AttributeError:
        not this model's state_dict) or `sizes_from_keras_file(path)` off a weights file."""
        source, destination = Path(source), Path(destination)
        if not source.is_file():
            raise UserError(f"{source}: no such file")
        if source.suffix == ".pt" and destination.name.endswith(".weights.h5"):
            state = read_torch_file(source)
            try:
                sizes = sizes_from_state(state)
            except (KeyError, ValueError, AttributeError) as error:
                raise UserError(f"not a {self.model_name} state_dict ({error})") from None
            model = build(**sizes)
            model.build()
            self.load_torch_layout(model, state)
            model.save_weights(destination)
        elif sizes_from_keras_file is not None and source.name.endswith(".weights.h5") and destination.suffix == ".pt":
            import torch

            model = build(**sizes_from_keras_file(source))
            model.build()
            try:
                model.load_weights(source)
            except ValueError as error:
                raise UserError(f"{source}: not {self.model_name} weights ({error})") from None
            torch.save(to_torch_state_dict(self.keras_to_torch_layout(model)), destination)
        else:
            raise UserError(f"convert {source} -> {destination}: expected .pt -> .weights.h5" + (
                " or .weights.h5 -> .pt" if sizes_from_keras_file else
                " (the other way: keras_to_torch in Python, the Keras model gives its sizes)"))
        return destination


@exit_on_user_error
def command_line(argv: list[str] | None, prog: str, description: str, convert_file: Callable[..., Path], *,
                 both_ways: bool = False, options: Mapping[str, dict] | None = None) -> int:
    """A converter's `main`: `prog SOURCE DESTINATION [options]` -> `convert_file(source, destination,
    **options)`; `options` are argparse flags (`{"--num-heads": {"type": int, ...}}`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a PyTorch .pt (state_dict or harness payload)" + (" or a Keras .weights.h5" if both_ways else ""))
    parser.add_argument("destination", help="the other format" if both_ways else "a Keras .weights.h5")
    for flag, settings in (options or {}).items():
        parser.add_argument(flag, **settings)
    args = vars(parser.parse_args(argv))
    print(convert_file(args.pop("source"), args.pop("destination"), **args))
    return 0


def to_torch_state_dict(state: Mapping[str, np.ndarray]) -> dict:
    """NumPy arrays -> torch tensors (copies), for `torch_model.load_state_dict(...)`."""
    import torch

    return {name: torch.from_numpy(np.array(value)) for name, value in state.items()}


def read_torch_file(path: Path) -> dict[str, np.ndarray]:
    """The state_dict in a `.pt` file (a state_dict, or a harness checkpoint payload's "model"), as float32 arrays."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise UserError(f"{path}: not a PyTorch file ({error})") from None
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds no state_dict")
    return {name: tensor.detach().cpu().float().numpy() for name, tensor in state.items()}
