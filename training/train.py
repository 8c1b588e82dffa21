#!/usr/bin/env python3
"""Train VFDepth (self-supervised surround-view depth).

    python training/train.py --config_file training/configs/ddad/ddad_surround_fusion.yaml
    python training/train.py --config_file ... --set training.learning_rate=2e-4 --set training.max_steps=100
    python training/train.py --config_file ... --resume              # continue <log_dir>/<name>/ exactly
    python training/train.py --config_file ... --check_data          # every file there? (minutes), then exit
    torchrun --nproc_per_node=4 training/train.py --config_file ...   # DistributedDataParallel

Outputs under ``<data.log_dir>/<config name>/`` (or ``--run_dir``): ``config.yaml`` (resolved),
``checkpoints/latest.pt`` + ``checkpoints/epoch_NNN.pt``, ``tensorboard/`` (every loss term, lr,
throughput, image summaries), ``train_log.jsonl`` and ``val_log.jsonl``.

With ``ddp.ddp_enable: true`` and no torchrun, the script spawns ``ddp.world_size`` workers itself.
Mistakes in the config, data or checkpoint end with one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from vfdepth_core import losses
from vfdepth_core.config import Config, ConfigError, load_config, save_config
from vfdepth_core.model import VFDepth
from vfdepth_core.training import checks
from vfdepth_core.training.distributed import (DistInfo, all_reduce_mean, batch_to_device, free_port,
                                               gather_by_rank, init_distributed, launched_by_torchrun)
from vfdepth_core.training.ema import WeightEMA
from vfdepth_core.training.files import append_jsonl, plain_json
from vfdepth_core.training.loaders import depth_val_loader, motion_val_loader, train_loader
from vfdepth_core.training.optim import (DIAGNOSTIC_KEYS, NonFiniteGuard, TrainingAbort, autocast, grads_finite,
                                         make_adam, step_diagnostics, warmup_factor)
from vfdepth_core.training.progress import Progress
from vfdepth_core.training.run_checkpoints import (restore_training, resume_checkpoint, resume_position,
                                                   write_run_checkpoints)
from vfdepth_core.training.sampling import seed_everything
from vfdepth_core.training.summaries import digest, image_summaries, param_checksum
from vfdepth_core.training.validation import run_validation

logger = logging.getLogger("vfdepth.train")

EXIT_USER_ERROR = 2


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train VFDepth.", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--config_file", required=True, help="YAML config (training/configs/...)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config key (repeatable), e.g. training.max_steps=100")
    ap.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                    help="continue from <run_dir>/checkpoints/latest.pt (or the given checkpoint)")
    ap.add_argument("--run_dir", default=None, help="output folder (default <data.log_dir>/<config name>)")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    ap.add_argument("--overwrite", action="store_true", help="start over in a run folder that has checkpoints")
    ap.add_argument("--no_progress", action="store_true", help="no tqdm bar (log lines instead)")
    ap.add_argument("--log_level", default="INFO", help="logging level (DEBUG shows per-step data indices)")
    ap.add_argument("--check_data", nargs="?", const="quick", choices=("quick", "decode"), default=None,
                    help="only check that every file the config reads (all splits, cameras, context frames, "
                         "calibration, masks, LIDAR) is there and readable, print a summary and exit (1 = "
                         "something missing); 'decode' reads every file in full")
    return ap.parse_args(argv)


def setup_logging(level: str, rank: int) -> None:
    fmt = "%(asctime)s %(levelname)s " + (f"[rank {rank}] " if "WORLD_SIZE" in os.environ else "") + "%(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt, force=True)


class Trainer:
    """Composes the loop: data, model, optimizer/scheduler, checkpoints, summaries, stopping."""

    def __init__(self, cfg: Config, args: argparse.Namespace, info: DistInfo):
        self.cfg = cfg
        self.args = args
        self.info = info
        self.device = info.device
        self.run_dir = Path(args.run_dir) if args.run_dir else Path(cfg.data.log_dir) / cfg.name
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.guard = NonFiniteGuard(cfg.training.max_bad_steps)
        self.stop_reason: Optional[str] = None
        self._signal = None
        self.writer = None
        self.last_val: Optional[dict] = None
        self.best_val: Optional[dict] = None  # {"step", "abs_rel"} of best.pt (logging.keep_best)
        self._saved_at = None
        self._last_save = time.monotonic()
        self._seconds_before = 0.0  # training time of earlier invocations of a resumed run
        self._time_used = 0.0  # share of training.max_minutes used (rank 0's clock, agreed in _sync_flags)

    # ---- set-up ----------------------------------------------------------------------------------

    def setup(self) -> None:
        """Checks, data loaders, model + optimizer (resumed when asked), run folder; in this order (the
        random draws of a fresh run depend on it)."""
        cfg = self.cfg
        seed_everything(cfg.training.seed + self.info.rank)
        checks.check_dataset_kind(cfg.data.data_path, cfg.data.dataset, self.args.config_file)
        if cfg.loss.gt_depth_coeff > 0 and "gt_depth" not in cfg.data.train_requirements:
            raise ConfigError(f"loss.gt_depth_coeff {cfg.loss.gt_depth_coeff} needs ground-truth depth in training: "
                              "add gt_depth to data.train_requirements (or set loss.gt_depth_coeff to 0)")
        resume_path = resume_checkpoint(self.args.resume, self.ckpt_dir)
        if self.info.is_main and resume_path is None and not self.args.overwrite:
            if (self.ckpt_dir / "latest.pt").exists():
                raise ConfigError(f"{self.run_dir} already holds a run (checkpoints/latest.pt); pass --resume to "
                                  f"continue it, --overwrite to start over, or --run_dir for a new folder")
        self._build_train_loader()
        self._build_val_loaders()
        self._build_model(resume_path)
        if self.info.is_main:
            self._open_run_folder()

    def _build_train_loader(self) -> None:
        tl = train_loader(self.cfg, self.info.rank, self.info.world_size, pin_memory=self.device.startswith("cuda"))
        self.train_set, self.sampler, self.loader_gen, self.loader = tl.samples, tl.sampler, tl.generator, tl.loader
        self.steps_per_epoch = tl.steps_per_epoch

    def _build_val_loaders(self) -> None:
        """Depth (and ego-motion) validation loaders on rank 0, when validation is on and the split has GT."""
        self.val_loader = depth_val_loader(self.cfg) if self.info.is_main else None
        self.val_cameras = [str(c) for c in self.cfg.data.cameras]
        self.motion_loader = motion_val_loader(self.cfg) if self.val_loader is not None else None

    def _build_model(self, resume_path: Optional[Path]) -> None:
        """Model, weight average, optimizer, schedule and loss scaler; resumed from `resume_path` when given."""
        t = self.cfg.training
        model = VFDepth(self.cfg).to(self.device)
        self.model_core = model
        self.ema = WeightEMA(model, t.ema_decay) if t.ema_decay > 0 and self.info.is_main else None
        self._ema_model = None
        self.optimizer = make_adam(model.parameters(), t.learning_rate, self.device)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=t.scheduler_step_size, gamma=0.1)
        self.scaler = torch.amp.GradScaler("cuda", enabled=(t.amp == "fp16" and self.device.startswith("cuda")))
        if resume_path is not None:
            self._load(resume_path)
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            dev_ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            model = DDP(model, device_ids=dev_ids, find_unused_parameters=True)
        self.model = model

    def _open_run_folder(self) -> None:
        """config.yaml (resolved) and the TensorBoard writer in the run folder."""
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "config.yaml")
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        n_params = sum(p.numel() for p in self.model_core.parameters())
        logger.info("run folder %s; %d training samples, %d steps/epoch x %d epochs, %d parameters, device %s%s",
                    self.run_dir, len(self.train_set), self.steps_per_epoch, cfg.training.num_epochs, n_params,
                    self.device, f", {self.info.world_size} processes" if self.info.distributed else "")

    def _load(self, path: Path) -> None:
        from vfdepth_core.checkpoint import load_checkpoint, restore_rng

        ck = load_checkpoint(path, map_location="cpu")
        checks.check_checkpoint_compatible(ck.get("config"), self.cfg, str(path))
        restore_training(ck, path, self.model_core, self.optimizer, self.scheduler, self.cfg.training.learning_rate)
        extra = ck.get("extra") or {}
        self.step, self.epoch, self.batch_in_epoch = resume_position(ck, self.info.world_size)
        self.guard.load_state_dict(extra.get("nonfinite", {}))
        self._seconds_before = float(extra.get("train_seconds", 0.0))
        if self.ema is not None:
            if "model_train" in ck:
                self.ema.load_state_dict(ck["model"], extra.get("ema_updates", 0))
            else:
                logger.warning("%s holds no weight average: training.ema_decay starts one from its weights", path)
                self.ema = WeightEMA(self.model_core, self.cfg.training.ema_decay)
        self.best_val = extra.get("best_val")
        rng_by_rank = extra.get("rng_by_rank") or {}
        restore_rng(rng_by_rank.get(str(self.info.rank), ck.get("rng")))
        logger.info("resumed %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch, self.batch_in_epoch)

    # ---- checkpoints -----------------------------------------------------------------------------

    def save(self, per_epoch: Optional[int] = None) -> None:
        """Write latest.pt (and epoch_NNN.pt); every rank's RNG goes into rank 0's file."""
        from vfdepth_core.checkpoint import rng_state

        rngs = gather_by_rank(rng_state(), self.info)
        self._last_save = time.monotonic()
        self._saved_at = (self.step, self.epoch, self.batch_in_epoch)
        if not self.info.is_main:
            return
        extra = {
            "epoch_in_progress": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.info.world_size,
            "nonfinite": self.guard.state_dict(),
            "rng_by_rank": rngs,
            "stop_reason": self.stop_reason or "",
            "train_seconds": self._train_seconds(),
        }
        if self.ema is not None:
            extra["ema_updates"] = self.ema.updates
        if self.last_val is not None:
            extra["last_val"] = plain_json(self.last_val)
        if self.best_val is not None:
            extra["best_val"] = dict(self.best_val)
        avg = self.ema.state_dict() if self.ema is not None else None
        write_run_checkpoints(self.ckpt_dir, self.model_core, self.cfg, avg, self.optimizer, self.scheduler, self.step,
                              self.epoch, extra, per_epoch)

    def _save_best(self) -> None:
        """logging.keep_best: best.pt (weights only) when the newest validation has the lowest metric abs_rel."""
        from vfdepth_core.checkpoint import save_checkpoint

        score = ((self.last_val or {}).get("metric") or {}).get("abs_rel")
        if not self.cfg.logging.keep_best or score is None or not math.isfinite(score):
            return
        if self.best_val is not None and score >= self.best_val["abs_rel"]:
            return
        self.best_val = {"step": self.step, "abs_rel": float(score)}
        save_checkpoint(self.ckpt_dir / "best.pt", self.model_core, self.cfg, step=self.step, epoch=self.epoch,
                        extra={"last_val": plain_json(self.last_val)},
                        averaged=self.ema.state_dict() if self.ema is not None else None)
        logger.info("best.pt: metric abs_rel %.4f at step %d", score, self.step)

    def _train_seconds(self) -> float:
        """Training wall time so far, earlier invocations of a resumed run included."""
        start = getattr(self, "_t_start", None)
        return self._seconds_before + (time.monotonic() - start if start is not None else 0.0)

    def _apply_lr_schedule(self, total_steps: int) -> None:
        """Set the learning rate for the coming step: training.lr_schedule 'linear' from the budget used, and
        within the first training.lr_warmup_steps a linear ramp on top of either schedule (the 'step'
        schedule's StepLR carries on from the full rate once the ramp is over)."""
        t = self.cfg.training
        warm = t.lr_warmup_steps > 0 and self.step <= t.lr_warmup_steps
        if t.lr_schedule == "linear":
            used = min(1.0, max(self.step / max(1, total_steps), self._time_used))
            lr = t.learning_rate * (1.0 - (1.0 - t.lr_final_fraction) * used)
        elif warm:
            sch = self.scheduler  # the rate StepLR holds now
            lr = sch.base_lrs[0] * sch.gamma ** (sch.last_epoch // sch.step_size)
        else:
            return
        if warm:
            lr *= warmup_factor(self.step, t.lr_warmup_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    # ---- summaries -------------------------------------------------------------------------------

    def _log_due(self, step: Optional[int] = None) -> bool:
        """Whether `step` (default: the last completed one) is logged."""
        step = self.step if step is None else step
        lg = self.cfg.logging
        freq = lg.log_frequency if step <= lg.early_phase else lg.late_log_frequency
        return step == 1 or (freq > 0 and step % freq == 0)

    def log_scalars(self, terms: Dict[str, float], sps: float) -> None:
        if self.writer is None:
            return
        for k, v in terms.items():
            self.writer.add_scalar(f"{'train' if k in DIAGNOSTIC_KEYS else 'loss'}/{k}", v, self.step)
        self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.step)
        self.writer.add_scalar("train/samples_per_s", sps, self.step)
        self.writer.add_scalar("train/epoch", self.epoch, self.step)
        self.writer.add_scalar("train/nonfinite_steps", self.guard.total, self.step)
        rec = {"step": self.step, "epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"],
               "samples_per_s": sps, "elapsed_s": time.monotonic() - self._t_start, **terms}
        append_jsonl(self.run_dir / "train_log.jsonl", rec)

    def log_images(self, batch: dict, outputs) -> None:
        if self.writer is not None:
            image_summaries(self.writer, batch, outputs, self.step, self.cfg.training.min_depth,
                            self.cfg.training.max_depth)

    # ---- validation ------------------------------------------------------------------------------

    def validate(self) -> None:
        if self.val_loader is None or not self.info.is_main:
            return
        model = self.model_core
        if self.ema is not None:  # score the weight average, the weights a checkpoint hands out
            if self._ema_model is None:
                import copy

                self._ema_model = copy.deepcopy(self.model_core)
            self._ema_model.load_state_dict(self.ema.state_dict())
            model = self._ema_model
        self.last_val = run_validation(model, self.val_loader, self.motion_loader, self.val_cameras, self.cfg,
                                       self.device, self.writer, self.run_dir, self.step, self.epoch, self._t_start)
        self._save_best()

    # ---- loop ------------------------------------------------------------------------------------

    def _sync_flags(self) -> tuple[bool, bool]:
        """(stop, save_due), agreed by all ranks (rank 0's clock and any rank's signal count)."""
        t = self.cfg.training
        reason = None
        if t.max_steps is not None and self.step >= t.max_steps:
            reason = f"training.max_steps={t.max_steps} reached"
        elif t.max_minutes is not None and (time.monotonic() - self._t_start) / 60.0 >= t.max_minutes:
            reason = f"training.max_minutes={t.max_minutes} reached"
        elif self._signal is not None:
            reason = f"signal {self._signal}"
        save_due = self.info.is_main and time.monotonic() - self._last_save >= 60.0 * t.checkpoint_minutes
        time_used = (self._train_seconds() / (60.0 * t.max_minutes)
                     if self.info.is_main and t.max_minutes is not None else 0.0)
        flags = torch.tensor([1.0 if reason else 0.0, 1.0 if save_due else 0.0, time_used], device=self.device)
        if self.info.distributed:
            import torch.distributed as dist

            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop_f, save_f, self._time_used = flags.tolist()  # the time share is rank 0's (the others send 0)
        stop, save = stop_f > 0, save_f > 0
        if stop and self.stop_reason is None:
            self.stop_reason = reason or "another rank stopped"
        return stop, save

    def _train_step(self, batch: dict):
        t = self.cfg.training
        self.optimizer.zero_grad(set_to_none=True)
        # the network under autocast; the losses (warps, pixel coordinates, SSIM) in fp32
        with autocast(self.device, t.amp):
            outputs = self.model(batch)
        total, terms = losses.compute_losses(batch, outputs, self.cfg)
        terms = {**terms, "total": total}
        self.scaler.scale(total.float()).backward()
        # identical decision on every rank: gradients are already averaged, the loss is reduced here
        loss_ok = torch.isfinite(all_reduce_mean(total.detach().float().reshape(1), self.info)).all()
        ok = self.guard.check(torch.tensor(0.0 if (bool(loss_ok) and grads_finite(self.model.parameters()))
                                           else float("nan")), self.step + 1)
        diag = {}
        if ok:
            self.scaler.unscale_(self.optimizer)  # no-op unless fp16 on CUDA: the norm is the true gradient's
            diag = step_diagnostics(self.model.parameters(), t.grad_clip_norm, outputs,
                                    log=self.info.is_main and self._log_due(self.step + 1))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model_core)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        return ok, {**{k: float(v.detach()) for k, v in terms.items()}, **diag}, outputs

    def train(self) -> int:
        """Epochs of steps until the last epoch, training.max_steps/max_minutes or a signal; then a final
        checkpoint."""
        self._t_start = self._last_save = time.monotonic()
        self._install_signals()
        t = self.cfg.training
        progress = Progress(self._total_steps(), self.step, t.batch_size * self.info.world_size, self.cfg.name,
                            t.max_minutes, self._t_start, bar=self.info.is_main and not self.args.no_progress)
        stopped, _ = self._sync_flags()
        while not stopped and self.epoch < t.num_epochs:
            stopped = self._run_epoch(progress) or self._end_epoch()
        progress.close()
        self._finish()
        return 0

    def _total_steps(self) -> int:
        t = self.cfg.training
        total = t.num_epochs * self.steps_per_epoch
        return total if t.max_steps is None else min(total, t.max_steps)

    def _run_epoch(self, progress: "Progress") -> bool:
        """The rest of the current epoch (from batch_in_epoch on); True when training must stop."""
        t = self.cfg.training
        self.sampler.set_position(self.epoch, self.batch_in_epoch * t.batch_size)
        self.train_set.set_epoch(self.epoch)
        self.loader_gen.manual_seed(t.seed * 1_000_003 + self.epoch)
        progress.start_epoch()
        for batch in self.loader:
            if batch is None:  # every sample of the batch was broken
                self.batch_in_epoch += 1
                continue
            self._step(batch_to_device(batch, self.device), progress)
            if t.val_every_steps and self.step % t.val_every_steps == 0:
                self.validate()
            stopped, save_due = self._sync_flags()
            if stopped:
                return True
            if save_due:
                self.save()
        return False

    def _step(self, batch: dict, progress: "Progress") -> None:
        """One optimizer step on `batch`, then its log lines and summaries."""
        self._debug_before_step(batch)
        self._apply_lr_schedule(progress.total)
        _, terms, outputs = self._train_step(batch)
        self.step += 1
        self.batch_in_epoch += 1
        progress.tick()
        self._debug_after_step(batch)
        progress.show(self.step, terms["total"], self.epoch, self.guard.total)
        if self.info.is_main and self._log_due():
            self.log_scalars(terms, progress.sps)
            self.log_images(batch, outputs)
            if progress.bar is None:
                logger.info("step %d/%d epoch %d loss %.4f %.2f samples/s", self.step, progress.total, self.epoch,
                            terms["total"], progress.sps)

    def _end_epoch(self) -> bool:
        """Step schedule, validation and the epoch's checkpoint; True when training must stop."""
        finished = self.epoch
        self.epoch += 1
        self.batch_in_epoch = 0
        if self.cfg.training.lr_schedule == "step":
            self.scheduler.step()
        if self.cfg.training.val_every_epochs and (finished + 1) % self.cfg.training.val_every_epochs == 0:
            self.validate()
        save_freq = max(1, self.cfg.logging.save_frequency)
        self.save(per_epoch=finished if (finished + 1) % save_freq == 0 else None)
        return self._sync_flags()[0]

    def _finish(self) -> None:
        if self.stop_reason is not None:
            logger.info("stopping early at step %d: %s", self.step, self.stop_reason)
        if self._saved_at != (self.step, self.epoch, self.batch_in_epoch):
            self.save()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.info.is_main:
            logger.info("done: %d steps, %d non-finite steps skipped, checkpoint %s", self.step, self.guard.total,
                        self.ckpt_dir / "latest.pt")

    def _debug_before_step(self, batch: dict) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("rank %d before step %d: rng digest %s, input digest %s, optimizer digest %s",
                         self.info.rank, self.step + 1, digest(torch.get_rng_state()),
                         {k: digest(v) for k, v in batch.items() if isinstance(v, torch.Tensor)},
                         digest(*[t for st in self.optimizer.state.values() for t in st.values()]))

    def _debug_after_step(self, batch: dict) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("rank %d step %d samples %s param_checksum %.10e", self.info.rank, self.step,
                         list(map(int, batch["index"])) if "index" in batch else "?", param_checksum(self.model_core))

    def _install_signals(self) -> None:
        def handler(signum, _frame):
            self._signal = signal.Signals(signum).name
            logger.warning("%s received: stopping after this step with a checkpoint", self._signal)

        try:
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            pass


# --------------------------------------------------------------------------------------------------
# Entry points


def _spawn_entry(local_rank: int, argv: List[str], world_size: int, port: int) -> None:
    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    rc = main(argv)
    if rc:
        raise SystemExit(rc)


def run(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    setup_logging(args.log_level, rank)
    cfg = load_config(args.config_file, args.set)
    if args.check_data:
        from vfdepth_core.datasets.check import run_check

        checks.check_dataset_kind(cfg.data.data_path, cfg.data.dataset, args.config_file)
        return run_check(cfg, decode=args.check_data == "decode", progress=not args.no_progress)
    if cfg.ddp.ddp_enable and not launched_by_torchrun() and cfg.ddp.world_size > 1:
        if torch.cuda.is_available() and torch.cuda.device_count() < cfg.ddp.world_size:
            raise ConfigError(f"ddp.world_size {cfg.ddp.world_size} needs as many GPUs, found "
                              f"{torch.cuda.device_count()}; lower ddp.world_size or disable ddp.ddp_enable")
        import torch.multiprocessing as mp

        logger.info("ddp.ddp_enable: spawning %d worker processes", cfg.ddp.world_size)
        mp.spawn(_spawn_entry, args=(list(argv if argv is not None else sys.argv[1:]), cfg.ddp.world_size,
                                     free_port()), nprocs=cfg.ddp.world_size, join=True)
        return 0
    info = init_distributed(cfg.ddp.gpus if cfg.ddp.ddp_enable else (), args.device)
    try:
        trainer = Trainer(cfg, args, info)
        trainer.setup()
        return trainer.train()
    finally:
        if info.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                # Ranks leave together: a rank that tears down gloo while another still finishes (rank 0
                # writes the last checkpoint) can lose its peer connection mid-shutdown and abort.
                try:
                    dist.barrier()
                except Exception as exc:  # a peer already failed: tear down regardless
                    logger.warning("rank %d: final barrier failed (%s)", info.rank, exc)
                dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> int:
    from vfdepth_core.checkpoint import CheckpointError
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.geometry import ShapeError

    try:
        return run(argv)
    except (ConfigError, DatasetError, CheckpointError, ShapeError, TrainingAbort) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
