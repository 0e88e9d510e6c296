"""Transformer training in PyTorch: WMT17 En-De, Adam with warmup + rsqrt decay, label smoothing,
BLEU on newstest2014 with beam search after every epoch.

Reads top to bottom as the benchmark (MLPerf reference mlcommons/training translation/tensorflow/
transformer/transformer_main.py): load the prepared data, build the Transformer and Adam, then per
epoch train on the reference's length-bucketed batches (~4096 tokens per replica), translate the
BLEU set with beam 4 / alpha 0.6 / input length + 50, score it with sacrebleu, stop at the target.
Everything that is not this model's business (log, clock, seeding, device, DDP, checkpoints) is
the harness's.

    python -m harness train transformer --framework pytorch --config smoke
    torchrun --nproc_per_node 8 -m translation.transformer.pytorch.train --config reference
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist

from compliance.mllog import constants
from harness import torch_runtime
from harness.checkpoint import latest_checkpoint, load_checkpoint_state, save_checkpoint
from harness.cli import train_entry
from harness.config import config_to_dict
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from translation import bleu
from translation.beam_search_pytorch import beam_search
from translation.transformer.config import HYPERPARAMETER_METADATA, Config, check, hyperparameters
from translation.transformer.dataset import Prepared, epoch_batches, load_for_training
from translation.transformer.pytorch.model import Transformer, build_model, smoothed_cross_entropy
from translation.transformer.schedule import learning_rate
from translation.translate import merge, score, shard_indices, translate
from translation.vocabulary import EOS_ID

FRAMEWORK = "pytorch"


def build_optimizer(cfg: Config, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam (reference: beta 0.9 / 0.997, epsilon 1e-9) and the warmup + rsqrt schedule per update."""
    opt = cfg.optimizer
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(opt.beta1, opt.beta2), eps=opt.epsilon,
                                 foreach=device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate(step, opt.learning_rate, cfg.model.hidden_size, opt.warmup_steps))
    return optimizer, scheduler


def to_device(prepared: Prepared, indices: np.ndarray, rt: torch_runtime.TorchRuntime) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's padded source and target ids on the device."""
    source = torch.from_numpy(prepared.train_source.pad(indices))
    target = torch.from_numpy(prepared.train_target.pad(indices))
    return source.to(rt.device, non_blocking=True), target.to(rt.device, non_blocking=True)


def train_one_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                    prepared: Prepared, batches: list[np.ndarray], label_smoothing: float,
                    rt: torch_runtime.TorchRuntime, epoch: int, progress: bool) -> tuple[float, int]:
    """One pass over this replica's batches; returns (mean loss per target token, target tokens)."""
    model.train()
    loss_total = torch.zeros((), dtype=torch.float64, device=rt.device)
    tokens_total = 0
    with progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(batches), status="") if bar else None
        for indices in batches:
            source, target = to_device(prepared, indices, rt)
            with rt.autocast():
                logits = model(source, target)
            loss_sum, tokens = smoothed_cross_entropy(logits, target, label_smoothing)
            loss = loss_sum / tokens  # per replica, as the reference; DDP averages the replicas' gradients
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_total += loss_sum.detach()
            tokens_total += int(prepared.train_target.lengths[indices].sum())
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1, tokens_total), tokens_total


def make_decoder(model: Transformer, cfg: Config, rt: torch_runtime.TorchRuntime):
    """padded source ids (n, length) -> the best beam-search output of each sentence (ids, EOS excluded)."""

    def decode_batch(source: np.ndarray) -> list[list[int]]:
        inputs = torch.from_numpy(source).to(rt.device)
        with torch_runtime.inference_mode(model), rt.autocast():
            encoder_outputs, bias = model.encode(inputs)
            sequences, _ = beam_search(model.decode_step, torch.zeros(len(source), dtype=torch.long, device=rt.device),
                                       model.initial_cache(encoder_outputs, bias), model.vocab_size, cfg.eval.beam_size,
                                       cfg.eval.alpha, source.shape[1] + cfg.eval.extra_decode_length, EOS_ID,
                                       dtype=torch.float64 if encoder_outputs.dtype == torch.float64 else torch.float32)
        return sequences[:, 0, 1:].cpu().tolist()

    return decode_batch


def evaluate(model: Transformer, prepared: Prepared, cfg: Config, rt: torch_runtime.TorchRuntime) -> bleu.BleuScore:
    """Translate the BLEU set (each replica its share) and score the detokenized output (rank 0's number)."""
    share = translate(prepared.test_source, make_decoder(model, cfg, rt), cfg.eval.sentences_per_batch,
                      shard_indices(len(prepared.test_source), rt.rank, rt.world_size))
    shares = [share]
    if rt.distributed:
        shares = [None] * rt.world_size
        dist.all_gather_object(shares, share)
    result, _ = score(merge(shares), prepared.vocabulary, prepared.test_references)
    return result


def save(cfg: Config, rt: torch_runtime.TorchRuntime, model: Transformer, optimizer, scheduler, scaler,
         epoch: int, step: int, eval_history: list) -> None:
    if rt.is_main:
        save_checkpoint(cfg.run.out_dir, benchmark=cfg.benchmark, framework=FRAMEWORK, epoch=epoch, step=step,
                        config=config_to_dict(cfg), extra={"eval_history": eval_history},
                        write_payload=lambda folder: torch_runtime.save_payload(
                            folder, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler))
    rt.barrier()


def resume_if_asked(cfg: Config, model: Transformer, optimizer, scheduler, scaler) -> tuple[int, int]:
    """(first epoch, step) after restoring the newest checkpoint; (1, 0) without one."""
    if not cfg.run.resume:
        return 1, 0
    path = latest_checkpoint(cfg.run.out_dir)
    if path is None:
        info(f"run.resume: no checkpoint under {cfg.run.out_dir}, starting from scratch")
        return 1, 0
    state = load_checkpoint_state(path, benchmark=cfg.benchmark, framework=FRAMEWORK)
    torch_runtime.load_payload(path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    info(f"resumed from {path} (epoch {state['epoch']})")
    return state["epoch"] + 1, state["step"]


def main(cfg: Config) -> RunResult:
    cfg = check(cfg)
    rt = torch_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=cfg.benchmark, barrier=rt.barrier, eval_every_epochs=cfg.schedule.eval_every_epochs)
    try:
        run.init_start()
        prepared = load_for_training(cfg, rt.world_size)
        model = torch_runtime.wrap_model(build_model(prepared.vocab_size, cfg.model, seed=cfg.run.seed), rt)
        optimizer, scheduler = build_optimizer(cfg, model)
        scaler = rt.grad_scaler()
        first_epoch, step = resume_if_asked(cfg, torch_runtime.unwrap(model), optimizer, scheduler, scaler)
        run.log_hyperparameters(hyperparameters(cfg), global_batch_size=cfg.data.max_tokens_per_replica * rt.world_size,
                                train_samples=len(prepared.train_indices), eval_samples=len(prepared.test_references),
                                metadata=HYPERPARAMETER_METADATA)
        run.logger.event(key=constants.EVAL_METRIC_SIGNATURE, value=bleu.signature())
        run.start()
        train_seconds, trained_tokens = 0.0, 0
        for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
            batches = epoch_batches(prepared, cfg, epoch, rt.rank, rt.world_size)
            began = time.perf_counter()
            loss, tokens = train_one_epoch(model, optimizer, scheduler, scaler, prepared, batches,
                                           cfg.optimizer.label_smoothing, rt, epoch, cfg.run.progress)
            if rt.device.type == "cuda":
                torch.cuda.synchronize(rt.device)
            train_seconds += time.perf_counter() - began
            trained_tokens += tokens * rt.world_size
            step += len(batches)
            reached = False
            if run.eval_due(epoch):
                with run.evaluation(epoch):
                    result = evaluate(torch_runtime.unwrap(model), prepared, cfg, rt)
                info(f"epoch {epoch}: loss {loss:.4f}, BLEU {result.score:.2f} ({step} steps)")
                reached = run.record_eval(result.fraction, epoch)
            if cfg.run.checkpoint_every_epochs and epoch % cfg.run.checkpoint_every_epochs == 0:
                save(cfg, rt, torch_runtime.unwrap(model), optimizer, scheduler, scaler, epoch, step, run.eval_history)
            if reached:
                break
        # throughput in target tokens per second (the unit the speed bench compares)
        return run.stop(throughput=trained_tokens / train_seconds if train_seconds else 0.0)
    finally:
        torch_runtime.shutdown()


if __name__ == "__main__":
    train_entry("translation/transformer", FRAMEWORK)
