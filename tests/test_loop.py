"""The training loop on a tiny linear model: divergence, skipped steps, checkpoints and pre-emption."""

import os
import signal
from types import SimpleNamespace

import pytest
import torch

from resnet_train.config import CompileMode, NanPolicy
from resnet_train.engine import loop
from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.evaluate import EvalResult, evaluate
from resnet_train.engine.logger import RunLogger
from resnet_train.engine.loop import Diverged, EmptyEpoch, LoopSettings, Trainer
from resnet_train.engine.run import Built, Runtime
from resnet_train.engine.schedules import PaperCifar
from resnet_train.engine.signals import Preempted, StopOutsideLoop

CPU = torch.device("cpu")


class Batches:
    """Four fixed batches per epoch; batch `poison` (a global iteration, 1-based) holds a NaN."""

    iters_per_epoch = 4

    def __init__(self, poison=None, on_batch=None):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(4, 8, 6, generator=generator)
        self.labels = torch.randint(0, 3, (4, 8), generator=generator)
        self.poison, self.on_batch = poison, on_batch

    def epoch(self, epoch, start=0):
        for step in range(start, self.iters_per_epoch):
            iteration = epoch * self.iters_per_epoch + step + 1
            images = self.images[step].clone()
            if iteration == self.poison:
                images[0, 0] = float("nan")
            if self.on_batch:
                self.on_batch(iteration)
            yield images, self.labels[step]


def make_trainer(tmp_path, batches, nan_policy=NanPolicy.stop, max_iters=8, checkpoint_every=2, log_every=1):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = PaperCifar(0.1, max_iters, milestones=[6])
    logger = RunLogger(
        tmp_path, enabled=True, start_iteration=0, max_iters=max_iters, progress=False, synthetic=True
    )
    settings = LoopSettings(
        max_iters=max_iters,
        eval_every=4,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        nan_policy=nan_policy,
        checkpoint_dir=tmp_path / "checkpoints",
        extra_state={"config": {"model": {"name": "linear"}}},
    )
    data = SimpleNamespace(train=batches, evals={"test": [(batches.images[0], batches.labels[0])]})
    built = Built(data, model, model, optimizer, schedule)
    return Trainer(built, logger, settings, Runtime(CPU, None, False, False, CompileMode.default))


def test_a_nan_loss_stops_the_run_naming_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, Batches(poison=5), log_every=4, checkpoint_every=2)
    with pytest.raises(Diverged, match="non-finite or beyond 10000 at iteration 5"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["iteration"] == 4


class Scaled(Batches):
    """Batch `poison` scaled by 1e6: a finite loss far beyond any a training run reaches."""

    def epoch(self, epoch, start=0):
        for images, labels in super().epoch(epoch, start):
            iteration = epoch * self.iters_per_epoch + start + 1
            start += 1
            yield (images * 1e6 if iteration == self.poison else images), labels


def test_a_finite_loss_beyond_any_sane_bound_stops_the_run_or_is_skipped(tmp_path):
    trainer = make_trainer(tmp_path / "stop", Scaled(poison=5), log_every=4, checkpoint_every=2)
    with pytest.raises(Diverged, match="beyond 10000 at iteration 5"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "stop" / "checkpoints" / "last.pt")["trainer"]["iteration"] == 4
    skipping = make_trainer(tmp_path / "skip", Scaled(poison=3), nan_policy=NanPolicy.skip)
    skipping.fit()
    assert skipping.state.skipped_steps == 1 and skipping.state.iteration == 8


def test_non_finite_bn_statistics_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, Batches(), checkpoint_every=2)
    bn = torch.nn.BatchNorm1d(3)
    trainer.raw_model.add_module("bn", bn)  # a buffer beside the weights, as BN's running_var

    def overflow(iteration):
        if iteration == 5:
            bn.running_var.fill_(float("inf"))  # the loss stays finite: the net's forward skips `bn`

    trainer.train_batches.on_batch = overflow
    with pytest.raises(Diverged, match="BN statistics became non-finite by iteration 6"):
        trainer.fit()
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert saved["trainer"]["iteration"] == 4
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())


def test_skip_policy_skips_and_counts_the_bad_step(tmp_path):
    trainer = make_trainer(tmp_path, Batches(poison=3), nan_policy=NanPolicy.skip)
    trainer.fit()
    assert trainer.state.skipped_steps == 1 and trainer.state.iteration == 8
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_lr_follows_the_schedule(tmp_path):
    trainer = make_trainer(tmp_path, Batches())
    trainer.fit()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # after the milestone at 6


def test_signal_finishes_the_step_writes_a_checkpoint_and_stops(tmp_path):
    def send_sigusr1(iteration):
        if iteration == 3:
            os.kill(os.getpid(), signal.SIGUSR1)

    trainer = make_trainer(tmp_path, Batches(on_batch=send_sigusr1), checkpoint_every=100)
    with pytest.raises(Preempted, match="SIGUSR1 at iteration 3"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["iteration"] == 3
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored


def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_weights(tmp_path):
    full = make_trainer(tmp_path / "full", Batches())
    full.fit()
    first = make_trainer(tmp_path / "part", Batches(), max_iters=8)
    first.settings.max_iters = 5  # stop early, as a killed run would after its checkpoint at 5
    first.fit()
    resumed = make_trainer(tmp_path / "resumed", Batches())
    resumed.load_state_dict(load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt"))
    assert (resumed.state.epoch, resumed.state.batch_in_epoch) == (1, 1)
    resumed.fit()
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_nan_after_resuming_is_reported_at_its_own_iteration(tmp_path):
    first = make_trainer(tmp_path / "first", Batches())
    first.settings.max_iters = 4
    first.fit()
    resumed = make_trainer(tmp_path / "resumed", Batches(poison=7), log_every=4, checkpoint_every=2)
    resumed.load_state_dict(load_checkpoint(tmp_path / "first" / "checkpoints" / "last.pt"))
    with pytest.raises(Diverged, match="non-finite or beyond 10000 at iteration 7"):
        resumed.fit()


def test_a_checkpoint_does_not_carry_the_optimizer_implementation_of_the_machine_that_wrote_it(tmp_path):
    writer = make_trainer(tmp_path / "writer", Batches())
    state = writer.state_dict()
    state["optimizer"]["param_groups"][0].update(foreach=True, fused=True)  # as a GPU machine wrote it
    reader = make_trainer(tmp_path / "reader", Batches())
    reader.load_state_dict(state)
    group, defaults = reader.optimizer.param_groups[0], reader.optimizer.defaults
    assert (group["foreach"], group["fused"]) == (defaults["foreach"], defaults["fused"]) == (None, None)


def test_best_checkpoint_keeps_the_lowest_val_error_beside_last(tmp_path, monkeypatch):
    val_errors = iter([0.5, 0.3, 0.4])  # at iterations 4, 8 and 12

    def evaluate_with_val(model, batches, device, amp_dtype):
        if batches == "val":
            return EvalResult(loss=1.0, error=next(val_errors), top5_error=0.0)
        return evaluate(model, batches, device, amp_dtype)

    trainer = make_trainer(tmp_path, Batches(), max_iters=12)
    trainer.eval_sets["val"] = "val"
    monkeypatch.setattr(loop, "evaluate", evaluate_with_val)
    trainer.fit()
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")  # verified by its .sha256
    assert best["trainer"]["iteration"] == 8 and best["trainer"]["best_val_error"] == 0.3
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["iteration"] == 12
    assert (tmp_path / "checkpoints" / "best.pt.sha256").is_file()
    assert not list((tmp_path / "checkpoints").glob("*.tmp*"))


class NoBatches(Batches):
    """A training set smaller than one batch: every epoch is empty."""

    def epoch(self, epoch, start=0):
        return iter(())


def test_an_epoch_without_batches_is_an_error_not_a_hang(tmp_path):
    trainer = make_trainer(tmp_path, NoBatches())
    with pytest.raises(EmptyEpoch, match="epoch 0 yielded no training batch"):
        trainer.fit()


def test_a_signal_outside_the_loop_stops_at_once_and_the_loop_takes_over(tmp_path):
    with pytest.raises(Preempted, match="SIGUSR1 outside the training loop; nothing new to checkpoint"):
        with StopOutsideLoop():
            os.kill(os.getpid(), signal.SIGUSR1)
            pytest.fail("the signal did not stop the run")  # reached only if the handler did not raise
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL

    def send_sigusr1(iteration):
        if iteration == 3:
            os.kill(os.getpid(), signal.SIGUSR1)

    with StopOutsideLoop(), pytest.raises(Preempted, match="at iteration 3; checkpoint written"):
        make_trainer(tmp_path, Batches(on_batch=send_sigusr1), checkpoint_every=100).fit()


def test_resuming_between_logging_points_reports_the_same_curve_as_the_uninterrupted_run(tmp_path):
    full = make_trainer(tmp_path / "full", Batches(), log_every=4)
    full.fit()

    def send_sigusr1(iteration):
        if iteration == 6:
            os.kill(os.getpid(), signal.SIGUSR1)

    part = make_trainer(tmp_path / "part", Batches(on_batch=send_sigusr1), log_every=4, checkpoint_every=100)
    with pytest.raises(Preempted, match="iteration 6"):
        part.fit()
    resumed = make_trainer(tmp_path / "resumed", Batches(), log_every=4)
    resumed.load_state_dict(load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt"))
    resumed.fit()
    # The point at 8 averages steps 5-8, two of them from before the resume, exactly as without it.
    assert resumed.last_metrics["train_loss"] == full.last_metrics["train_loss"]
    assert resumed.last_metrics["train_error"] == full.last_metrics["train_error"]
    assert resumed.state.train_images == full.state.train_images == 8 * 8


def test_the_logged_images_per_s_is_the_figure_the_run_keeps(tmp_path):
    """One figure everywhere: each logging point hands the logger the run's rate so far, rounded once to the
    one decimal metrics.json keeps, so the last log line and metrics.json cannot disagree."""
    trainer = make_trainer(tmp_path, Batches(), log_every=2)
    logged = []
    trainer.logger.train_point = lambda iteration, loss, error, lr, images_per_s: logged.append(images_per_s)
    trainer.fit()
    assert len(logged) == 4 and all(rate > 0 and rate == round(rate, 1) for rate in logged)
    state = trainer.state
    assert logged[-1] == state.images_per_s == round(state.train_images / state.train_time_s, 1)
