"""`<run>/.hydra/`: the composed config of the command that trains in a run directory, written only once that
command holds the directory and its config was accepted.

Hydra would write `.hydra/{config,hydra,overrides}.yaml` before the job starts, so a command then refused
(the lock is held, or the config would change the run's trajectory) would have replaced the run's record with
its own: `configs/config.yaml` sets `hydra.output_subdir: null`, and the training job writes the same three
files, with the same text, once the run is its own (`engine/run.py`, `train(..., accepted=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from ..outputs import atomic_output


@dataclass(frozen=True)
class HydraRecord:
    """The three files as text (plain strings: the record travels to spawned workers)."""

    files: tuple[tuple[str, str], ...]

    @classmethod
    def of_job(cls, task_config: DictConfig, hydra_config: DictConfig) -> HydraRecord:
        """`task_config` is what the task receives, `hydra_config` is `HydraConfig.instance().cfg`."""
        return cls((
            ("config.yaml", OmegaConf.to_yaml(task_config)),
            ("hydra.yaml", OmegaConf.to_yaml(hydra_config)),
            ("overrides.yaml", OmegaConf.to_yaml(hydra_config.hydra.overrides.task)),
        ))  # fmt: skip

    def write(self, run_dir: Path) -> None:
        """Write the files into `run_dir/.hydra/`, each whole (temporary file, then rename)."""
        folder = Path(run_dir) / ".hydra"
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:  # a file in its place, a read-only copy
            raise UserError(f"cannot write the run's config record {folder}: {error.strerror}") from None
        for name, text in self.files:
            with atomic_output(folder / name) as partial:
                partial.write_text(text, encoding="utf-8")
