"""Training stages: SFT on the intervention data, then GRPO with the grader as reward.

:mod:`.common` holds what both share (building the TRL config from a params section, the
resumable checkpoint folder, atomic model output); :mod:`.callbacks` the DVCLive training
curves; :mod:`.sft` and :mod:`.rl` hold what differs. Heavy libraries (torch, transformers,
trl) are imported inside functions.
"""

from .common import TrainingResult

__all__ = ["TrainingResult"]
