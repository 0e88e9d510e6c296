"""DeepSpeech2 training in PyTorch: CTC loss, SGD with Nesterov momentum, WER on the validation set every epoch.

Reads top to bottom as the benchmark (MLPerf Training v0.5 reference, mlcommons/training
speech_recognition/pytorch/train.py): load the duration-sorted manifests, build DeepSpeech2 and SGD
(momentum 0.9, Nesterov), then per epoch train on the batches in manifest order with the CTC loss
summed over the batch and divided by its size, gradient norm clipped at 400; decode the validation set
greedily, score the word error rate with jiwer, stop at the target; divide the learning rate by 1.1.
Everything that is not this model's business (log, clock, seeding, device, DDP, checkpoints) is the
harness's.

    python -m harness train speech_recognition --framework pytorch --config smoke
    torchrun --nproc_per_node 8 -m speech_recognition.pytorch.train --config reference
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from harness import torch_runtime
from harness.checkpoint import resume_point
from harness.cli import train_entry
from harness.datasets import verify_manifest
from harness.errors import ConfigError
from harness.lifecycle import RunResult, TrainingRun
from harness.progress import info, progress_bar
from speech_recognition.batches import BatchSource
from speech_recognition.config import Config, hyperparameters
from speech_recognition.dataset import load_splits
from speech_recognition.pytorch.data import loader, to_torch
from speech_recognition.pytorch.model import build_model
from speech_recognition.text import BLANK, greedy_decode
from speech_recognition.wer import error_counts

FRAMEWORK = "pytorch"


def build_data(cfg: Config, rt: torch_runtime.TorchRuntime) -> tuple[BatchSource, BatchSource]:
    train = BatchSource(load_splits(cfg.run.data_dir, cfg.data.train_splits), cfg.schedule.global_batch_size,
                        training=True, augmentation=cfg.data.augmentation, seed=cfg.run.seed,
                        rank=rt.rank, world_size=rt.world_size)
    evaluation = BatchSource(load_splits(cfg.run.data_dir, cfg.data.eval_splits), cfg.schedule.eval_batch_size,
                             training=False, rank=rt.rank, world_size=rt.world_size)
    return train, evaluation


def build_optimizer(cfg: Config, model: torch.nn.Module) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with Nesterov momentum; the learning rate divided by the anneal factor after every epoch."""
    if cfg.optimizer.name != "sgd":
        raise ConfigError(f"optimizer.name={cfg.optimizer.name}: DeepSpeech2 trains with sgd")
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.base_lr, momentum=cfg.optimizer.momentum,
                                nesterov=cfg.optimizer.nesterov, weight_decay=cfg.optimizer.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=1.0 / cfg.optimizer.lr_anneal_factor)
    return optimizer, scheduler


def ctc_loss_sum(logits: torch.Tensor, batch) -> torch.Tensor:
    """Summed CTC loss of the batch's utterances (float32 at least); an impossible alignment counts 0, as the
    reference's warp-ctc run zeroed an infinite loss."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (frames, N, classes)
    return F.ctc_loss(log_probs, batch.targets, batch.output_frames, batch.target_lengths, blank=BLANK,
                      reduction="sum", zero_infinity=True)


def train_one_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    source: BatchSource, cfg: Config, rt: torch_runtime.TorchRuntime, epoch: int) -> float:
    """One pass over the training batches in order; returns the mean loss per utterance (this rank)."""
    model.train()
    loss_total, utterances = torch.zeros((), dtype=torch.float64, device=rt.device), 0
    with progress_bar(cfg.run.progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(source), status="") if bar else None
        dtype = next(model.parameters()).dtype
        for numpy_batch in loader(source, epoch, cfg.run.num_workers):
            batch = to_torch(numpy_batch, rt.device, dtype)
            with rt.autocast():
                logits = model(batch.features)
            loss_sum = ctc_loss_sum(logits, batch)
            # the reference's loss / batch size; scaled so that DDP's average over ranks is the mean
            # over the global batch whatever the split
            loss = loss_sum * (rt.world_size / batch.global_count)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.gradient_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            loss_total += loss_sum.detach().double()
            utterances += len(batch.transcripts)
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1, utterances)


def transcribe(model: torch.nn.Module, batch) -> list[str]:
    """Greedy CTC decoding of a batch (the reference's GreedyDecoder on the model's log-softmax)."""
    best_paths = model(batch.features).argmax(dim=-1).cpu().numpy()
    return [greedy_decode(path, int(length)) for path, length in zip(best_paths, batch.output_frames)]


def evaluate(model: torch.nn.Module, source: BatchSource, rt: torch_runtime.TorchRuntime) -> float:
    """Corpus WER (jiwer) over the whole validation set, summed over ranks."""
    errors, words = 0, 0
    with torch_runtime.inference_mode(model):
        for numpy_batch in source.iterate(epoch=0, workers=1):
            batch = to_torch(numpy_batch, rt.device)
            with rt.autocast():
                hypotheses = transcribe(model, batch)
            batch_errors, batch_words = error_counts(list(batch.transcripts), hypotheses)
            errors, words = errors + batch_errors, words + batch_words
    total_errors, total_words = rt.all_reduce_sum([float(errors), float(words)])
    return total_errors / total_words if total_words else float("nan")


def main(cfg: Config) -> RunResult:
    rt = torch_runtime.setup(cfg.run)
    run = TrainingRun(cfg, benchmark=cfg.benchmark, barrier=rt.barrier,
                      eval_every_epochs=cfg.schedule.eval_every_epochs)
    try:
        run.init_start()
        verify_manifest(cfg.run.data_dir, cfg.run.verify_data)
        train_source, eval_source = build_data(cfg, rt)
        model = torch_runtime.wrap_model(build_model(cfg.model, seed=cfg.run.seed), rt)
        optimizer, scheduler = build_optimizer(cfg, model)
        scaler = rt.grad_scaler()
        state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        first_epoch, step = resume_point(torch_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
        run.log_hyperparameters(hyperparameters(cfg), global_batch_size=cfg.schedule.global_batch_size,
                                train_samples=len(train_source.utterances), eval_samples=len(eval_source.utterances))
        run.start()
        train_seconds, trained = 0.0, 0
        for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
            began = time.perf_counter()
            loss = train_one_epoch(model, optimizer, scaler, train_source, cfg, rt, epoch)
            train_seconds += time.perf_counter() - began
            trained += len(train_source.utterances)
            step += len(train_source)
            reached = False
            if run.eval_due(epoch):
                with run.evaluation(epoch):
                    wer = evaluate(model, eval_source, rt)
                info(f"epoch {epoch}: loss {loss:.3f}, WER {wer:.4f}, lr {optimizer.param_groups[0]['lr']:.3g}")
                reached = run.record_eval(wer, epoch)
            scheduler.step()  # the reference anneals after the epoch's evaluation
            torch_runtime.save_checkpoint_if_due(cfg, rt, benchmark=cfg.benchmark, epoch=epoch, step=step,
                                                 extra={"eval_history": run.eval_history}, **state)
            if reached:
                break
        return run.stop(throughput=trained / train_seconds if train_seconds else 0.0)
    finally:
        torch_runtime.shutdown()


if __name__ == "__main__":
    train_entry("speech_recognition", FRAMEWORK)


__all__ = ["main", "train_one_epoch", "evaluate", "build_data", "build_optimizer", "np"]
