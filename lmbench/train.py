"""The one trainer for every torch family, in the style of pytorch/examples' word_language_model.

Teacher forcing on the training split cut into ``batch_size`` parallel streams; chunks of
``model.seq_len(bptt)`` tokens with the state carried across chunks and detached between them
(truncated BPTT); global-norm gradient clipping (pre-clip norms and the clipped fraction recorded);
SGD / Adam / AdamW; a learning-rate schedule; validation through the shared evaluator each epoch;
early stopping; budgets in epochs, tokens or minutes. Each epoch ends with an atomic checkpoint of
everything a resume needs (weights, optimizer, schedule state, RNG states, position), so a resumed
run on CPU ends exactly where an uninterrupted one does. At the end the model holds the weights
with the best validation perplexity, which run.py scores on test.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from lmbench.corpora import Corpus
from lmbench.errors import UserError
from lmbench.evaluate import evaluate
from lmbench.hardware import (
    choose_precision,
    keep_freed_memory,
    matmul_peak,
    resolve_precision,
    resolve_threads,
    running_jobs,
)
from lmbench.models.base import FitSettings
from lmbench.runs import checkpoint

log = logging.getLogger(__name__)
FLUSH_EVERY = 25  # steps between reading losses back from the device (one sync per flush)
# train.precision=auto times fp32 against bf16 over MEASURE_ROUNDS alternating rounds of MEASURE_STEPS
# steps, after one warm-up step each: 14 steps, under 1% of a zaremba_small PTB epoch (2,324 steps)
MEASURE_STEPS, MEASURE_ROUNDS = 2, 3


def batchify(ids, streams: int, device) -> torch.Tensor:
    """The id stream cut into ``streams`` contiguous parallel streams, one per column: (N, B)."""
    n = len(ids) // streams
    return torch.as_tensor(ids[:n * streams], dtype=torch.long).view(streams, n).t().contiguous() \
        .to(device)


OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}  # train.optimizer


@dataclass
class TrainState:
    """Where training stands, all a resume needs beside the weights, optimizer and RNG states
    (checkpointed as ``asdict``): the position, the rate, the best validation so far, why it stopped,
    the per-epoch history, gradient-norm sums, the threads it computes with and the precision it
    chose (with why: ``hardware.choose_precision``)."""

    lr: float
    epoch: int = 0
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    best_valid: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    stopped_by: str = "max_epochs"
    history: list[dict] = field(default_factory=list)
    norm_sum: float = 0.0
    norm_max: float = 0.0
    clipped: int = 0
    threads: int | None = None  # resolved once, kept by a resume so it computes the same sums
    precision: str | None = None  # chosen once (measured under auto), kept by a resume likewise
    precision_choice: dict | None = None


@dataclass
class EpochResult:
    """One pass over the streams: the rate it started with, its step losses, tokens, wall and CPU
    seconds, and the step whose loss was not finite (None: it did not diverge)."""

    lr: float
    losses: list[float]
    tokens: int
    seconds: float
    cpu_seconds: float = 0.0
    diverged_step: int | None = None


class Schedule:
    """The learning rate, in one place: an epoch starts at ``lr x lr_decay^(epoch - decay_start)``
    under ``step`` (Zaremba et al.), else at the state's rate, which ``plateau`` multiplies by
    ``lr_decay`` when validation stops improving; ``cosine`` sets it every step (linear warm-up over
    ``warmup_steps``, then cosine decay to 0 at ``total_steps``)."""

    def __init__(self, tc, total_steps: int):
        self.tc, self.total_steps = tc, total_steps

    def epoch_start(self, state: TrainState, epoch: int) -> float:
        if self.tc.schedule == "step":
            return self.tc.lr * self.tc.lr_decay ** max(0, epoch - self.tc.decay_start)
        return state.lr

    def at_step(self, step: int) -> float | None:
        """The rate for this step, or None where it stays the epoch's."""
        tc = self.tc
        if tc.schedule != "cosine":
            return None
        if step < tc.warmup_steps:
            return tc.lr * (step + 1) / tc.warmup_steps
        progress = (step - tc.warmup_steps) / max(1, self.total_steps - tc.warmup_steps)
        return tc.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def validated(self, state: TrainState, lr: float, improved: bool) -> None:
        if not improved and self.tc.schedule == "plateau":
            state.lr = lr * self.tc.lr_decay


def state_tensors(state) -> list[torch.Tensor]:
    """A recurrent state's tensors: ``h``, or ``h`` and ``c`` for an LSTM."""
    return list(state) if isinstance(state, tuple) else [state]


def detach_state(state):
    """The state cut from its history (truncated BPTT; pytorch/examples' ``repackage_hidden``)."""
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def parallel_jobs() -> int:
    """Jobs sharing this machine's cores: the lmbench jobs running now, and at least the parallel
    launcher's worker count (joblib's n_jobs) when this job runs under one."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else {}
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
    return max(n_jobs if n_jobs and n_jobs > 0 else 1, running_jobs())


def _rng_state() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_state(states: dict) -> None:
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def train(model, corpus: Corpus, settings: FitSettings) -> dict:
    """Train ``model`` on ``corpus.train`` under ``settings.train``, checkpointing in
    ``settings.run_dir``; returns the record's ``train`` section."""
    return Trainer(model, corpus, settings).fit()


class Trainer:
    """One training run: its streams, optimizer and resumable state; the epochs, each one pass over
    the parallel streams (teacher forcing, truncated BPTT, clipping, budgets); and what each epoch
    ends with (validation, schedule, early stopping, checkpoints)."""

    def __init__(self, model, corpus: Corpus, settings: FitSettings):
        tc, run_dir = settings.train, settings.run_dir
        if run_dir is None:
            raise ValueError("training needs a run folder for its checkpoints (FitSettings.run_dir)")
        self.model, self.corpus, self.settings, self.tc = model, corpus, settings, tc
        keep_freed_memory()
        model.to(torch.device(settings.device))
        self.data = batchify(corpus.train, tc.batch_size, model.device)  # (N, B)
        if self.data.size(0) < 2:
            raise UserError(f"The train split ({len(corpus.train)} tokens) is too short for "
                            f"train.batch_size={tc.batch_size} parallel streams.")
        self.optimizer = OPTIMIZERS[str(tc.optimizer)](model.net.parameters(), lr=tc.lr,
                                                       weight_decay=tc.weight_decay)
        self.last, self.best = run_dir / checkpoint.CHECKPOINT, run_dir / checkpoint.BEST
        self.meta = checkpoint.meta(model, corpus, settings)
        self.state = self._start_or_resume()
        self.epochs_before = len(self.state.history)  # trained by earlier processes (a resume)
        if tc.threads != "auto" or self.state.threads is None:  # a resume keeps its threads: the same sums
            self.state.threads = resolve_threads(tc.threads, parallel_jobs())
        if self.state.threads:
            torch.set_num_threads(self.state.threads)
        self.params = list(model.net.parameters())
        self.seq = model.seq_len(tc.bptt)
        self.steps_per_epoch = math.ceil((self.data.size(0) - 1) / self.seq)
        total_steps = self.steps_per_epoch * tc.max_epochs  # the cosine schedule's horizon
        if tc.max_tokens:
            total_steps = min(total_steps, math.ceil(tc.max_tokens / (self.seq * tc.batch_size)))
        self.schedule = Schedule(tc, total_steps)
        self.clip = tc.clip if tc.clip > 0 else math.inf
        self.precision = self._precision()

    def _precision(self) -> str:
        """The precision this run trains in: chosen once (``hardware.choose_precision``, by a measurement
        cached per machine and job shape), kept by a resume."""
        state, tc = self.state, self.tc
        if state.precision is None and self.epochs_before:  # a checkpoint from before the measured choice
            state.precision = resolve_precision(tc.precision, self.model.device)
            state.precision_choice = {"why": "resumed a run whose precision followed the hardware rule"}
        if state.precision is None:
            shape = {"model": self.meta["model"], "vocab_size": self.meta["vocab_size"], "seq": self.seq,
                     "batch_size": tc.batch_size, "optimizer": str(tc.optimizer), "threads": state.threads}
            state.precision, state.precision_choice = choose_precision(
                tc.precision, self.model.device, self._time_precisions, shape)
            log.info("training in %s: %s", state.precision, state.precision_choice["why"])
        return state.precision

    def _start_or_resume(self) -> TrainState:
        """A fresh state, or the one saved in the run's checkpoint (``resume``), with its weights,
        optimizer and RNG states; a checkpoint left there without ``resume`` is refused."""
        if self.settings.resume:
            saved = checkpoint.load(self.last, self.meta, self.model.device)
            self.model.net.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            _set_rng_state(saved["rng"])
            log.info("resumed from %s after epoch %d", self.last, saved["state"]["epoch"])
            return TrainState(**saved["state"])
        checkpoint.refuse_existing(self.last)
        return TrainState(lr=self.tc.lr)

    def fit(self) -> dict:
        model, tc, state, diverged = self.model, self.tc, self.state, None
        while state.epoch < tc.max_epochs and not state.finished:
            epoch = state.epoch + 1
            last_good = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
            result = self.run_epoch(epoch)
            diverged = result.diverged_step
            if diverged is not None:
                log.warning("loss became non-finite at step %d (epoch %d); stopped with the last good "
                            "weights", diverged, epoch)
                state.stopped_by = "diverged"
                break
            self._end_epoch(epoch, result)
        if self.best.exists():
            model.net.load_state_dict(checkpoint.load(self.best)["model"])
        elif diverged is not None:
            model.net.load_state_dict(last_good)
        history, steps = state.history, state.step
        seconds = sum(h["train_seconds"] for h in history)
        tokens_per_s = state.tokens / seconds if seconds else None
        # training FLOP/s achieved, and as a fraction of this machine's matmul peak at the precision
        # trained in (see lmbench/hardware.py)
        peak = matmul_peak(model.device)[self.precision]
        achieved = 3 * model.flops_per_token() * tokens_per_s if tokens_per_s else None
        return {
            "stopped_by": state.stopped_by,
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "best_valid_ppl": state.best_valid if history else None,
            "steps": steps,
            "steps_per_epoch": self.steps_per_epoch,
            "tokens": state.tokens,
            "tokens_per_epoch": (self.data.size(0) - 1) * tc.batch_size,
            "train_tokens_per_s": tokens_per_s,
            "train_seconds": seconds,
            "train_cpu_seconds": sum(h.get("train_cpu_seconds", 0.0) for h in history),
            "lr_history": [h["lr"] for h in history],
            "valid_ppl_history": [h["valid_ppl"] for h in history],
            "history": history,
            "grad_norm_mean": state.norm_sum / steps if steps else None,
            "grad_norm_max": state.norm_max,
            "clipped_fraction": state.clipped / steps if steps else None,
            "clip": tc.clip,
            "precision": self.precision,
            "precision_choice": state.precision_choice,
            "flops_per_token_forward": model.flops_per_token(),
            "flops_per_token_train": 3 * model.flops_per_token(),  # forward, and twice that backward
            "peak_flops_per_s": peak,
            "achieved_flops_per_s": achieved,
            "peak_fraction": achieved / peak if achieved else None,
            **model.eval_info(),
            "diverged_step": diverged,
            "threads": torch.get_num_threads() if model.device.type == "cpu" else None,
            "resumed_train_seconds": sum(h["train_seconds"] for h in history[:self.epochs_before]),
        }

    def _end_epoch(self, epoch: int, result: EpochResult) -> None:
        """Validate; keep the best weights; decay the rate or stop early; checkpoint; log the epoch."""
        state, tc = self.state, self.tc
        state.tokens += result.tokens
        valid = evaluate(self.model, self.corpus, "valid", self.settings.protocol,
                         self.settings.eval_batch_size, 0)[0]
        improved = valid["ppl"] < state.best_valid
        if improved:
            state.best_valid, state.best_epoch, state.bad_epochs = valid["ppl"], epoch, 0
            checkpoint.save({"meta": self.meta, "model": self.model.net.state_dict()}, self.best)
        else:
            state.bad_epochs += 1
        self.schedule.validated(state, result.lr, improved)
        if tc.patience and state.bad_epochs >= tc.patience:
            state.stopped_by, state.finished = "early_stopping", True
        train_loss = sum(result.losses) / max(1, len(result.losses))
        state.epoch = epoch
        state.seconds += result.seconds + valid["eval_seconds"]
        state.history.append({"epoch": epoch, "lr": result.lr, "train_loss": train_loss,
                              "valid_ppl": valid["ppl"], "train_seconds": result.seconds,
                              "train_cpu_seconds": result.cpu_seconds,
                              "tokens_per_s": result.tokens / result.seconds,
                              "valid_seconds": valid["eval_seconds"]})
        checkpoint.save({"meta": self.meta, "model": self.model.net.state_dict(), "rng": _rng_state(),
                         "optimizer": self.optimizer.state_dict(), "state": asdict(state)}, self.last)
        log.info("epoch %d | lr %.4g | train ppl %.2f | valid ppl %.2f%s | %.0f tok/s | %.0f s",
                 epoch, result.lr, math.exp(min(train_loss, 50)), valid["ppl"], " *" if improved else "",
                 result.tokens / result.seconds, result.seconds + valid["eval_seconds"])

    def set_lr(self, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def run_epoch(self, epoch: int) -> EpochResult:
        """One pass over the parallel streams, until they end or a budget runs out."""
        tc, state, data, model = self.tc, self.state, self.data, self.model
        lr = self.set_lr(self.schedule.epoch_start(state, epoch))
        model.net.train()
        hidden = model.initial_state(tc.batch_size)
        pending, losses, seen, started = [], [], 0, time.perf_counter()
        cpu_started = time.process_time()
        last = data.size(0) - 1
        with tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}", unit="step", leave=False,
                  disable=None, file=sys.stderr) as bar:
            for i in range(0, last, self.seq):
                if (step_lr := self.schedule.at_step(state.step)) is not None:
                    self.set_lr(step_lr)
                n = min(self.seq, last - i)
                x, y = data[i:i + n], data[i + 1:i + 1 + n]  # (T, B) inputs and next-token targets
                hidden, loss_and_norm = self._step(x, y, hidden)
                pending.append(loss_and_norm)
                seen += y.numel()
                elapsed = state.seconds + time.perf_counter() - started
                out_of_tokens = tc.max_tokens and state.tokens + seen >= tc.max_tokens
                out_of_time = tc.max_minutes and elapsed >= 60 * tc.max_minutes
                if len(pending) == FLUSH_EVERY or out_of_tokens or out_of_time or i + n == last:
                    bad_step = self._flush(pending, losses, bar, seen / (time.perf_counter() - started))
                    if bad_step is not None:
                        return EpochResult(lr, losses, seen, 0.0, diverged_step=bad_step)
                    pending = []
                if out_of_tokens or out_of_time:
                    state.stopped_by = "max_tokens" if out_of_tokens else "max_minutes"
                    state.finished = True
                    break
        # CPU seconds over all threads: the work, not the wait
        return EpochResult(lr, losses, seen, time.perf_counter() - started, time.process_time() - cpu_started)

    def _time_precisions(self) -> dict:
        """{"fp32" | "bf16": (seconds per step, mean loss), "seconds": wall seconds of it all} of this
        run's own training steps on the first chunks of its streams, for ``choose_precision``: per
        precision one warm-up step, then the least of MEASURE_ROUNDS alternating rounds of MEASURE_STEPS
        steps, in CPU time on a CPU (what other processes on the machine disturb least). Every round
        starts from the run's weights, optimizer state and RNG, restored at the end, so the run goes on
        as if nothing had been measured."""
        started = time.perf_counter()
        start = ({k: v.detach().clone() for k, v in self.model.net.state_dict().items()},
                 copy.deepcopy(self.optimizer.state_dict()), _rng_state())
        step, timed = self.state.step, {"fp32": [], "bf16": []}
        try:
            for precision in timed:  # warm-up
                self._timed_steps(precision, 1, start)
            for _ in range(MEASURE_ROUNDS):
                for precision, rounds in timed.items():
                    rounds.append(self._timed_steps(precision, MEASURE_STEPS, start))
        finally:
            self._restore(*start)
            self.state.step = step
        return {**{precision: (min(seconds for seconds, _ in rounds) / MEASURE_STEPS, rounds[0][1])
                   for precision, rounds in timed.items()}, "seconds": time.perf_counter() - started}

    def _restore(self, weights: dict, optimizer: dict, rng: dict) -> None:
        self.model.net.load_state_dict(weights)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer))  # it would update the copy's tensors
        self.optimizer.zero_grad(set_to_none=True)
        _set_rng_state(rng)

    def _timed_steps(self, precision: str, steps: int, start: tuple) -> tuple[float, float]:
        """Seconds (CPU seconds on a CPU) and mean loss of ``steps`` training steps in ``precision``
        from ``start`` (weights, optimizer state, RNG) at the streams' beginning."""
        self._restore(*start)
        self.precision, device, last = precision, self.model.device, self.data.size(0) - 1
        clock = time.process_time if device.type == "cpu" else time.perf_counter
        chunks = range(0, last, self.seq)
        self.model.net.train()
        hidden, losses = self.model.initial_state(self.tc.batch_size), []
        started = clock()
        for i in range(steps):
            j = chunks[i % len(chunks)]
            n = min(self.seq, last - j)
            hidden, loss_and_norm = self._step(self.data[j:j + n], self.data[j + 1:j + 1 + n], hidden)
            losses.append(loss_and_norm[0])
        loss = float(torch.stack(losses).mean())  # waits for the device
        return clock() - started, loss

    def _step(self, x: torch.Tensor, y: torch.Tensor, hidden):
        """One chunk, teacher-forced: forward, backward, clip, update. Returns the state carried to
        the next chunk and the (loss, pre-clip gradient norm) pair, left on the device."""
        model = self.model
        with torch.autocast(model.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            loss, hidden = model.chunk_loss(x, y, detach_state(hidden))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        self.state.step += 1
        return hidden, torch.stack([loss.detach().float(), norm.detach().float()])

    def _flush(self, pending: list, losses: list, bar, tokens_per_s: float) -> int | None:
        """Read the pending steps' losses and gradient norms back from the device (one sync): the
        first step whose loss is not finite, or None after adding them to ``losses``, the norm
        statistics and the progress bar."""
        state = self.state
        values = torch.stack(pending).cpu()
        bad = (~torch.isfinite(values[:, 0])).nonzero()
        if len(bad):
            return state.step - len(pending) + int(bad[0]) + 1
        state.norm_sum += float(values[:, 1].sum())
        state.norm_max = max(state.norm_max, float(values[:, 1].max()))
        state.clipped += int((values[:, 1] > self.clip).sum())
        losses.extend(values[:, 0].tolist())
        mean = sum(losses[-100:]) / len(losses[-100:])
        bar.set_postfix(loss=f"{mean:.3f}", ppl=f"{math.exp(min(mean, 50)):.1f}", tok_s=f"{tokens_per_s:.0f}",
                        refresh=False)
        bar.update(len(pending))
        return None
