"""harness.convert: the table-driven weight converter every benchmark's tensorflow/convert.py uses.

A tiny table (a convolution, a batch norm with its counter, a dense layer) is checked against
PyTorch's own modules: weights converted either way give the same function, compared in float64,
where the frameworks' kernels differ only by rounding (~1e-16 relative per operation; bound 1e-10
of the output's scale), and the round trip Keras -> PyTorch layout -> Keras is bit for bit.
"""

from __future__ import annotations

import subprocess
import sys

# torch before TensorFlow: in the other order triton's native library crashes the process
import torch

# isort: split
import keras
import numpy as np
import pytest

from harness.convert import (
    Part,
    Row,
    Table,
    as_numpy,
    command_line,
    counter,
    layer_rows,
    load_torch_layout,
    read_torch_file,
    to_torch_state_dict,
    torch_layout,
)
from harness.errors import UserError

BOUND = 1e-10  # relative to the largest output: float64 rounding of a few hundred multiply-adds is ~1e-15


def keras_layers(seed: int) -> dict:
    """Conv2D 3 -> 4 (3 x 2 kernel), its batch norm, Dense 7 -> 2: float64, every weight random."""
    keras.utils.set_random_seed(seed)
    layers = {"conv": keras.layers.Conv2D(4, (3, 2), dtype="float64"),
              "bn": keras.layers.BatchNormalization(epsilon=1e-5, dtype="float64"),
              "fc": keras.layers.Dense(2, dtype="float64")}
    layers["conv"].build((None, 6, 5, 3))
    layers["bn"].build((None, 4, 4, 4))
    layers["fc"].build((None, 7))
    rng = np.random.default_rng(seed)
    for layer in layers.values():
        for variable in layer.weights:
            variable.assign(rng.uniform(0.5, 1.5, size=variable.shape))  # positive: a valid variance too
    return layers


def table(layers: dict) -> list[Row]:
    return [*layer_rows(layers["conv"], "conv"), *layer_rows(layers["bn"], "bn"), counter("bn.num_batches_tracked"),
            *layer_rows(layers["fc"], "fc")]


def torch_modules(seed: int) -> torch.nn.ModuleDict:
    torch.manual_seed(seed)
    modules = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(3, 4, (3, 2)), "bn": torch.nn.BatchNorm2d(4),
                                   "fc": torch.nn.Linear(7, 2)}).double().eval()
    with torch.no_grad():
        modules["bn"].running_mean.uniform_(-0.5, 0.5)
        modules["bn"].running_var.uniform_(0.5, 2.0)
        modules["bn"].weight.uniform_(0.5, 1.5)
        modules["bn"].bias.uniform_(-0.5, 0.5)
    return modules


def outputs_agree(modules: torch.nn.ModuleDict, layers: dict) -> None:
    rng = np.random.default_rng(7)
    images, vectors = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(3, 7))
    with torch.no_grad():
        expected = modules["bn"](modules["conv"](torch.from_numpy(images))).numpy()
        expected_fc = modules["fc"](torch.from_numpy(vectors)).numpy()
    actual = np.asarray(layers["bn"](layers["conv"](images.transpose(0, 2, 3, 1)), training=False)).transpose(0, 3, 1, 2)
    actual_fc = np.asarray(layers["fc"](vectors))
    assert np.abs(actual - expected).max() <= BOUND * np.abs(expected).max()
    assert np.abs(actual_fc - expected_fc).max() <= BOUND * np.abs(expected_fc).max()


@pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps
def test_pytorch_weights_loaded_into_keras_compute_the_same_function_in_float64():
    modules, layers = torch_modules(0), keras_layers(1)
    load_torch_layout(table(layers), modules.state_dict(), "tiny")
    outputs_agree(modules, layers)


@pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps
def test_keras_weights_written_in_pytorch_layout_load_strictly_into_pytorch_and_compute_the_same_function():
    layers, modules = keras_layers(2), torch_modules(3)
    state = torch_layout(table(layers))
    assert list(state) == list(modules.state_dict())  # PyTorch's names, in PyTorch's order
    assert state["bn.num_batches_tracked"].dtype == np.int64 and state["bn.num_batches_tracked"] == 0
    modules.load_state_dict(to_torch_state_dict(state), strict=True)
    outputs_agree(modules, layers)


@pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps
def test_round_trip_keras_to_pytorch_layout_to_keras_is_bit_for_bit_in_float64():
    source, target = keras_layers(4), keras_layers(5)
    state = torch_layout(table(source))
    assert all(value.dtype == np.float64 for name, value in state.items() if name != "bn.num_batches_tracked")
    load_torch_layout(table(target), state, "tiny")
    for name in source:
        for ours, theirs in zip(source[name].weights, target[name].weights, strict=True):
            assert theirs.dtype == "float64" and np.array_equal(ours.numpy(), theirs.numpy()), ours.path


def test_a_state_in_another_dtype_is_converted_to_the_variables_dtype():
    layers = keras_layers(6)
    state32 = torch_layout(table(layers), np.float32)
    assert all(value.dtype == np.float32 for name, value in state32.items() if name != "bn.num_batches_tracked")
    target = keras_layers(7)
    load_torch_layout(table(target), state32, "tiny")
    assert target["fc"].kernel.dtype == "float64"
    np.testing.assert_array_equal(target["fc"].kernel.numpy(), layers["fc"].kernel.numpy().astype(np.float32))


def values(layers: dict) -> list[np.ndarray]:
    return [variable.numpy().copy() for layer in layers.values() for variable in layer.weights]


def test_a_missing_name_is_one_user_error_naming_the_model_and_the_weight_and_changes_nothing():
    layers = keras_layers(8)
    before = values(layers)
    state = dict(torch_modules(0).state_dict())
    del state["fc.bias"]
    with pytest.raises(UserError, match=r"^tiny weights: missing \['fc.bias'\], unexpected \[\]$"):
        load_torch_layout(table(layers), state, "tiny")
    assert all(np.array_equal(a, b) for a, b in zip(before, values(layers)))


def test_an_unexpected_name_is_one_user_error_naming_it():
    state = {**torch_modules(0).state_dict(), "extra.weight": torch.zeros(1)}
    with pytest.raises(UserError, match=r"^tiny weights: missing \[\], unexpected \['extra.weight'\]$"):
        load_torch_layout(table(keras_layers(9)), state, "tiny")


def test_a_wrong_shape_is_one_user_error_naming_the_weight_and_both_shapes_and_changes_nothing():
    layers = keras_layers(10)
    before = values(layers)
    state = dict(torch_modules(0).state_dict())
    state["conv.weight"] = torch.zeros(4, 3, 2, 3, dtype=torch.float64)  # kernel 2 x 3 where the model has 3 x 2
    with pytest.raises(UserError, match=r"^tiny weights: conv.weight has shape \(4, 3, 2, 3\), the model needs \(4, 3, 3, 2\)$"):
        load_torch_layout(table(layers), state, "tiny")
    assert all(np.array_equal(a, b) for a, b in zip(before, values(layers)))


def test_long_name_lists_are_cut_to_one_line():
    rows = [Row(f"w{index}", keras.Variable(np.zeros(1))) for index in range(8)]
    with pytest.raises(UserError) as error:
        load_torch_layout(rows, {}, "tiny")
    assert "\n" not in str(error.value) and str(error.value).startswith("tiny weights: missing ['w0', 'w1', 'w2', 'w3', 'w4'] and 3 more")


def test_counters_are_never_required_and_other_counters_are_skipped_only_when_asked():
    layers = keras_layers(11)
    state = {name: value for name, value in torch_modules(0).state_dict().items() if name != "bn.num_batches_tracked"}
    load_torch_layout(table(layers), state, "tiny")  # the table's own counter may be absent
    state["other.num_batches_tracked"] = torch.tensor(5)
    with pytest.raises(UserError, match="unexpected \\['other.num_batches_tracked'\\]"):
        load_torch_layout(table(layers), state, "tiny")
    load_torch_layout(table(layers), state, "tiny", ignore_counters=True)


def test_a_prefix_loads_only_the_rows_under_it_from_names_without_it():
    layers = keras_layers(12)
    conv_before = layers["conv"].kernel.numpy().copy()
    linear = torch_modules(0)["fc"]
    load_torch_layout(table(layers), linear.state_dict(), "tiny", prefix="fc.")  # {"weight", "bias"}
    np.testing.assert_array_equal(layers["fc"].kernel.numpy(), linear.weight.detach().numpy().T)
    np.testing.assert_array_equal(layers["conv"].kernel.numpy(), conv_before)


def test_parts_of_one_variable_round_trip_row_by_row():
    variable = keras.Variable(np.arange(6.0).reshape(2, 3))
    rows = [Row("first", Part(variable, 0)), Row("second", Part(variable, 1))]
    assert {name: value.tolist() for name, value in torch_layout(rows).items()} == {"first": [0, 1, 2], "second": [3, 4, 5]}
    load_torch_layout(rows, {"first": np.array([6.0, 7, 8]), "second": np.array([9.0, 10, 11])}, "tiny")
    np.testing.assert_array_equal(variable.numpy(), [[6, 7, 8], [9, 10, 11]])


def test_bfloat16_tensors_are_read_exactly_as_float32():
    tensor = torch.tensor([1.5, -2.25, 3.0e-3], dtype=torch.bfloat16)
    array = as_numpy(tensor)
    assert array.dtype == np.float32 and np.array_equal(array, tensor.float().numpy())


@pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps
def test_a_table_binds_the_four_conversions_and_keras_to_torch_goes_through_load_numpy():
    class Loader(torch.nn.ModuleDict):
        def load_numpy(self, weights):  # the benchmarks' PyTorch models have this
            self.load_state_dict(to_torch_state_dict(weights), strict=True)

    weights = Table("tiny", table)
    layers = keras_layers(13)
    modules = Loader(torch_modules(14))
    weights.keras_to_torch(layers, modules)
    outputs_agree(modules, layers)
    other = keras_layers(15)
    weights.torch_to_keras(modules, other)
    outputs_agree(modules, other)
    assert weights.keras_to_torch_layout(other, np.float32)["fc.weight"].dtype == np.float32


def test_a_pt_file_is_read_as_a_state_dict_or_a_checkpoint_payload_and_anything_else_is_one_line(tmp_path):
    state = torch_modules(16).state_dict()
    torch.save(state, tmp_path / "state.pt")
    torch.save({"model": state, "epoch": 3}, tmp_path / "payload.pt")
    for name in ("state.pt", "payload.pt"):
        read = read_torch_file(tmp_path / name)
        assert list(read) == list(state) and all(np.array_equal(read[k], state[k].float().numpy()) for k in state)
    (tmp_path / "text.pt").write_text("not a pickle")
    torch.save([1, 2], tmp_path / "list.pt")
    for name, message in (("text.pt", "not a PyTorch file"), ("list.pt", "holds no state_dict"), ("absent.pt", "not a PyTorch file")):
        with pytest.raises(UserError, match=f"{name}: {message}"):
            read_torch_file(tmp_path / name)


class TinyDense(keras.Model):
    """A Keras model as the command-line converters need one: sizes in, `build()` with no arguments."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.inputs_, self.fc = inputs, keras.layers.Dense(outputs, name="fc")

    def build(self, input_shape=None):
        self.fc.build((None, self.inputs_))
        self.built = True

    def call(self, x):
        return self.fc(x)


TINY = Table("tiny", lambda model: list(layer_rows(model.fc, "fc")))


def tiny_sizes(state) -> dict:
    outputs, inputs = state["fc.weight"].shape
    return {"inputs": int(inputs), "outputs": int(outputs)}


def tiny_convert(source, destination, both_ways: bool = True):
    return TINY.convert_file(source, destination, TinyDense, tiny_sizes, (lambda path: {"inputs": 7, "outputs": 2}) if both_ways else None)


def test_the_command_line_converts_a_pt_file_to_keras_weights_and_back_bit_for_bit(tmp_path, capsys):
    linear = torch.nn.ModuleDict({"fc": torch.nn.Linear(7, 2)})
    torch.save({"model": linear.state_dict(), "epoch": 1}, tmp_path / "in.pt")  # a harness checkpoint payload
    assert command_line([str(tmp_path / "in.pt"), str(tmp_path / "tiny.weights.h5")], "tiny", "", tiny_convert, both_ways=True) == 0
    assert command_line([str(tmp_path / "tiny.weights.h5"), str(tmp_path / "out.pt")], "tiny", "", tiny_convert, both_ways=True) == 0
    back = torch.load(tmp_path / "out.pt")
    assert list(back) == ["fc.weight", "fc.bias"]
    assert all(torch.equal(back[name], value) for name, value in linear.state_dict().items())
    assert capsys.readouterr().out.split() == [str(tmp_path / "tiny.weights.h5"), str(tmp_path / "out.pt")]


def test_the_command_line_says_what_is_wrong_in_one_line_and_exits_2(tmp_path, capsys):
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    torch.save(torch.nn.ModuleDict({"fc": torch.nn.Linear(7, 2)}).state_dict(), tmp_path / "in.pt")
    for arguments, message in ((["absent.pt", "a.weights.h5"], "absent.pt: no such file"),
                               (["other.pt", "a.weights.h5"], "not a tiny state_dict ('fc.weight')"),
                               (["in.pt", "a.h5"], "expected .pt -> .weights.h5 or .weights.h5 -> .pt")):
        with pytest.raises(SystemExit) as exit_:
            command_line([str(tmp_path / arguments[0]), str(tmp_path / arguments[1])], "tiny", "", tiny_convert, both_ways=True)
        assert exit_.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
    with pytest.raises(UserError, match="the other way: keras_to_torch in Python"):
        tiny_convert(tmp_path / "in.pt", tmp_path / "a.pt", both_ways=False)


def test_the_module_imports_only_numpy():
    """The TensorFlow image has no PyTorch, and a PyTorch-only process should not load TensorFlow."""
    code = ("import sys, harness.convert; loaded = {'torch', 'tensorflow', 'keras'} & set(sys.modules); "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
