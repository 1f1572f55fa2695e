"""The training engine: loop, schedule, evaluation, checkpoints, distributed setup and logging."""
