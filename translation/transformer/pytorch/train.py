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
from harness.checkpoint import resume_point
from harness.cli import train_entry
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
        state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        first_epoch, step = resume_point(torch_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
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
            torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=cfg.benchmark, epoch=epoch, step=step,
                                                 extra={"eval_history": run.eval_history}, **state)
            if reached:
                break
        # throughput in target tokens per second (the unit the speed bench compares)
        return run.stop(throughput=trained_tokens / train_seconds if train_seconds else 0.0)
    finally:
        torch_runtime.shutdown()


if __name__ == "__main__":
    train_entry("translation/transformer", FRAMEWORK)
