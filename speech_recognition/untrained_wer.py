"""The untrained model's WER per seed (BENCHMARK_DONE point 6: the smoke target must sit far from it).

Builds the model each smoke run starts from (`build_model(cfg.model, seed)`, as train.py does for
`run.seed`) and scores it on the config's validation splits with the training code's own `evaluate`:
the "epoch 0" score the training log does not record (the first logged evaluation follows one epoch).

    python -m speech_recognition.untrained_wer --framework pytorch --seeds 1-10 [--config smoke] [--set run.data_dir=...]
"""

from __future__ import annotations

import argparse
import json

from harness.config import load_config
from speech_recognition.config import Config


def eval_source(cfg: Config):
    """The config's validation batches, as train.py evaluates them."""
    from speech_recognition.batches import BatchSource
    from speech_recognition.dataset import load_splits

    return BatchSource(load_splits(cfg.run.data_dir, cfg.data.eval_splits), cfg.schedule.eval_batch_size, training=False)


def untrained_wer(cfg: Config, framework: str, seed: int, source=None) -> float:
    """WER of the model a `run.seed=seed` run starts from, on `source` (default: `eval_source(cfg)`)."""
    source = source if source is not None else eval_source(cfg)
    if framework == "pytorch":
        import torch

        from harness.torch_runtime import TorchRuntime
        from speech_recognition.pytorch.model import build_model
        from speech_recognition.pytorch.train import evaluate

        rt = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)
        return evaluate(build_model(cfg.model, seed=seed), source, rt)
    from speech_recognition.tensorflow.model import build_model
    from speech_recognition.tensorflow.train import evaluate, make_best_path_fn

    return evaluate(make_best_path_fn(build_model(cfg.model, seed=seed)), source)


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["pytorch", "tensorflow"], required=True)
    parser.add_argument("--config", default="smoke")
    parser.add_argument("--seeds", default="1-10", help="a seed or a range, e.g. 1-10")
    parser.add_argument("--set", action="append", default=[], help="config override, key=value")
    args = parser.parse_args(argv)
    cfg = load_config(Config, f"speech_recognition/configs/{args.config}.yaml", ["run.threads=1", *args.set])
    source = eval_source(cfg)  # read the splits once, not once per seed
    for seed in _seeds(args.seeds):
        wer = untrained_wer(cfg, args.framework, seed, source)
        print(json.dumps({"framework": args.framework, "seed": seed, "untrained_wer": wer}), flush=True)


if __name__ == "__main__":
    main()
