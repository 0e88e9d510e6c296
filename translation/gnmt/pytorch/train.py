"""GNMT training in PyTorch: WMT16 En-De, Adam with the reference's warmup / step-decay schedule,
label smoothing, gradient clipping, BLEU on newstest2014 with the reference's beam search after every epoch.

Reads top to bottom as the benchmark (MLPerf reference mlcommons/training rnn_translator/pytorch/
train.py and seq2seq/train/trainer.py): load the prepared data, build GNMT and Adam, then per epoch
train on the reference's length buckets (128 pairs per replica), translate the BLEU set with beam 5,
length normalization and coverage penalty (translation/beam_search_gnmt_pytorch.py), detokenize,
score it with sacrebleu, stop at the target. Everything that is not this model's business (log,
clock, seeding, device, DDP, checkpoints) is the harness's.

    python -m harness train gnmt --framework pytorch --config smoke
    torchrun --nproc_per_node 8 -m translation.gnmt.pytorch.train --config reference
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
from translation.batching import shard_batches
from translation.beam_search_gnmt_pytorch import beam_search
from translation.bpe import BOS_ID, EOS_ID, PAD_ID
from translation.gnmt.config import HYPERPARAMETER_METADATA, Config, check, hyperparameters
from translation.gnmt.dataset import Prepared, epoch_batches, load_for_training, steps_per_epoch
from translation.gnmt.pytorch.model import GNMT, build_model, smoothed_loss
from translation.gnmt.schedule import LearningRateSchedule, learning_rate, lr_schedule
from translation.translate import merge, score, shard_indices, translate

FRAMEWORK = "pytorch"


def build_optimizer(cfg: Config, model: torch.nn.Module, schedule: LearningRateSchedule):
    """Adam (reference: torch.optim.Adam, betas 0.9 / 0.999, epsilon 1e-8, no weight decay) and the
    WarmupMultiStepLR rates: update n (1-based) uses schedule.learning_rate(n)."""
    opt = cfg.optimizer
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.learning_rate, betas=(opt.beta1, opt.beta2), eps=opt.epsilon,
                                 foreach=device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: learning_rate(done + 1, schedule) / schedule.base)
    return optimizer, scheduler


def to_device(prepared: Prepared, indices: np.ndarray, rt: torch_runtime.TorchRuntime):
    """A batch's padded source, source lengths and padded target ([BOS] ... [EOS]) on the device."""
    source = torch.from_numpy(prepared.train_source.pad(indices)).long()
    lengths = torch.from_numpy(prepared.train_source.lengths[indices])
    target = torch.from_numpy(prepared.train_target.pad(indices)).long()
    return source.to(rt.device, non_blocking=True), lengths.to(rt.device), target.to(rt.device, non_blocking=True)


def train_one_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                    prepared: Prepared, batches: list[np.ndarray], cfg: Config, rt: torch_runtime.TorchRuntime,
                    epoch: int, progress: bool) -> tuple[float, int]:
    """One pass over this replica's batches; returns (mean loss per target token, target tokens)."""
    model.train()
    loss_total = torch.zeros((), dtype=torch.float64, device=rt.device)
    tokens_total = 0
    with progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch}", total=len(batches), status="") if bar else None
        for indices in batches:
            source, lengths, target = to_device(prepared, indices, rt)
            with rt.autocast():
                logits = model(source, lengths, target[:, :-1])
            loss_sum, tokens = smoothed_loss(logits, target[:, 1:], cfg.optimizer.label_smoothing)
            loss = loss_sum / len(indices)  # per sentence, as the reference (trainer.py `loss /= B`)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_total += loss_sum.detach()
            tokens_total += int(prepared.train_target.lengths[indices].sum()) - len(indices)
            if bar:
                bar.advance(task)
    return float(loss_total) / max(1, tokens_total), tokens_total


def make_decoder(model: GNMT, cfg: Config, rt: torch_runtime.TorchRuntime):
    """padded source ids (n, length) -> each sentence's best beam-search output (ids after BOS)."""
    ev = cfg.eval

    def decode_batch(source: np.ndarray) -> list[list[int]]:
        inputs = torch.from_numpy(source).long().to(rt.device)
        lengths = (inputs != PAD_ID).sum(dim=1)
        with torch_runtime.inference_mode(model), rt.autocast():
            cache = model.initial_cache(inputs, lengths)
            result = beam_search(model.decode_step, cache, len(source), ev.beam_size, ev.max_length, bos_id=BOS_ID,
                                 eos_id=EOS_ID, source_length=source.shape[1], length_norm_factor=ev.length_norm_factor,
                                 length_norm_const=ev.length_norm_const, coverage_penalty_factor=ev.coverage_penalty_factor,
                                 dtype=torch.float64 if cache["keys"].dtype == torch.float64 else torch.float32,
                                 device=rt.device)
        best = result.sequences[torch.arange(len(source), device=rt.device), result.best]
        return best[:, 1:].cpu().tolist()

    return decode_batch


def evaluate(model: GNMT, prepared: Prepared, cfg: Config, rt: torch_runtime.TorchRuntime) -> bleu.BleuScore:
    """Translate the BLEU set (each replica its share), detokenize, score (every rank the same number)."""
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
        steps = steps_per_epoch(prepared, cfg, rt.world_size)
        schedule = lr_schedule(cfg, steps)
        model = torch_runtime.wrap_model(build_model(prepared.vocab_size, cfg.model, seed=cfg.run.seed), rt)
        optimizer, scheduler = build_optimizer(cfg, model, schedule)
        scaler = rt.grad_scaler()
        state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        first_epoch, step = resume_point(torch_runtime.resume(cfg, benchmark=cfg.benchmark, **state))
        run.log_hyperparameters(hyperparameters(cfg, steps),
                                global_batch_size=cfg.data.batch_size_per_replica * rt.world_size,
                                train_samples=steps * cfg.data.batch_size_per_replica * rt.world_size,
                                eval_samples=len(prepared.test_references), metadata=HYPERPARAMETER_METADATA)
        run.logger.event(key=constants.EVAL_METRIC_SIGNATURE, value=bleu.signature())
        run.start()
        train_seconds, trained_tokens = 0.0, 0
        for epoch in run.epochs(cfg.schedule.max_epochs, first_epoch):
            batches = shard_batches(epoch_batches(prepared, cfg, epoch, rt.world_size), rt.rank, rt.world_size)
            began = time.perf_counter()
            loss, tokens = train_one_epoch(model, optimizer, scheduler, scaler, prepared, batches, cfg, rt, epoch,
                                           cfg.run.progress)
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
    train_entry("translation/gnmt", FRAMEWORK)
