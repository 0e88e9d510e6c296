"""torch_runtime.save_checkpoint_if_due / resume: what one wrote the other restores (weights, optimizer
state, the torch RNG, files kept beside the payload), under the run-level rules of harness.checkpoint."""

from __future__ import annotations

import json

import torch

from harness import torch_runtime
from harness.config import BaseConfig, RunOptions
from harness.torch_runtime import TorchRuntime

RANK0 = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)


def model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).square().sum().backward()
    optimizer.step()  # momentum buffers exist now: optimizer state to save
    return model, optimizer


def test_resume_restores_what_save_checkpoint_if_due_wrote(tmp_path):
    cfg = BaseConfig(benchmark="ncf", run=RunOptions(out_dir=str(tmp_path), checkpoint_every_epochs=1))
    model, optimizer = model_and_optimizer(seed=1)
    torch_runtime.save_checkpoint_if_due(cfg, RANK0, benchmark="ncf", epoch=1, step=5, model=model, optimizer=optimizer,
                                         extra={"eval_history": [[1, 0.5]]},
                                         save_beside=lambda folder: (folder / "window.txt").write_text("42 positions"))
    expected_draw = torch.rand(3)  # what the run draws after its checkpoint

    folder = tmp_path / "checkpoints" / "epoch-0001"
    assert sorted(path.name for path in folder.iterdir()) == ["state.json", torch_runtime.PAYLOAD_FILE, "window.txt"]
    assert json.loads((folder / "state.json").read_text())["framework"] == "pytorch"

    other, other_optimizer = model_and_optimizer(seed=2)
    assert not torch.equal(other.weight, model.weight)
    beside = []
    resumed = torch_runtime.resume(BaseConfig(benchmark="ncf", run=RunOptions(out_dir=str(tmp_path), resume=True)),
                                   benchmark="ncf", model=other, optimizer=other_optimizer,
                                   load_beside=lambda folder: beside.append((folder / "window.txt").read_text()))
    assert (resumed["epoch"], resumed["step"], resumed["extra"]) == (1, 5, {"eval_history": [[1, 0.5]]})
    assert beside == ["42 positions"]
    for name, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[name], value), name
    for parameter, other_parameter in zip(model.parameters(), other.parameters()):
        assert torch.equal(other_optimizer.state[other_parameter]["momentum_buffer"],
                           optimizer.state[parameter]["momentum_buffer"])
    assert torch.equal(torch.rand(3), expected_draw)
