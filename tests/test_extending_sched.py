"""A schedule of one's own, from a module outside the package (tests/mylab), chosen on the command line: it
trains, resumes by the same rules as the package's schedules, and its settings are checked."""

import pytest
from clitools import compose_config
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_train.config import config_to_plain
from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.run import build_schedule
from resnet_train.errors import UserError

OWN = ["sched._target_=mylab.schedules.LinearToZero", "+sched.end_lr=0.02"]


def test_a_schedule_of_ones_own_trains_a_net_and_logs_its_lr(train_job):
    job = train_job(*OWN, "trainer.max_iters=8", "trainer.log_every=4", "trainer.eval_every=8")
    events = EventAccumulator(str(job.run_dir))
    events.Reload()
    # each logging point shows the lr of the step it follows: iterations 3 and 7 of 8
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("lr")] == [(4, 0.07), (8, 0.03)]
    stored = load_checkpoint(job.run_dir / "checkpoints" / "last.pt")["config"]["sched"]
    assert stored["_target_"] == "mylab.schedules.LinearToZero" and stored["end_lr"] == 0.02


def test_its_settings_are_built_from_the_config_and_the_replaced_options_defaults_left_out():
    own = ["sched._target_=mylab.schedules.WarmupCosine", "+sched.warmup_iters=10", "trainer.max_iters=110"]
    config = OmegaConf.to_object(compose_config("sched=cosine", *own))
    schedule = build_schedule(config)  # sched.min_lr (cosine's, at its default) is not WarmupCosine's
    assert [round(schedule.lr(i), 4) for i in (0, 9, 10, 60, 110)] == [0.01, 0.1, 0.1, 0.05, 0.0]
    assert config_to_plain(config)["sched"]["warmup_iters"] == 10


def test_a_setting_it_does_not_take_is_refused_in_one_line():
    config = OmegaConf.to_object(compose_config(*OWN, "sched.milestones=[5]"))
    with pytest.raises(
        UserError, match=r"^mylab.schedules.LinearToZero does not take the setting milestones"
    ):
        build_schedule(config)


def test_a_resume_may_not_change_the_length_it_spreads_over(train_job, tmp_path):
    run = tmp_path / "run"
    train_job(*OWN, "trainer.max_iters=4", run_dir=run)
    with pytest.raises(UserError, match="trainer.max_iters: 4 -> 8"):
        train_job(*OWN, "trainer.max_iters=8", run_dir=run)
