"""Opening a backend from params: options passed through, and the resume wrapper."""

import torch

from intervention_training.config import BackendParams
from intervention_training.resume import ResumableBackend
from intervention_training.runtime import finish_backend, open_backend


def test_open_backend_passes_options_and_wraps_for_resume(tiny_model_dir, tmp_path):
    before = torch.get_num_threads()
    try:
        plain = open_backend(tiny_model_dir, BackendParams(batch_size=3, num_threads=1))
        assert plain.batch_size == 3 and torch.get_num_threads() == 1
        assert plain.model_id == str(tiny_model_dir)
        wrapped = open_backend(tiny_model_dir, BackendParams(shard_requests=5), tmp_path / "w")
        assert isinstance(wrapped, ResumableBackend) and wrapped.shard_size == 5
        assert wrapped.supports_json_trigger
        (tmp_path / "w").mkdir()
        finish_backend(wrapped)
        assert not (tmp_path / "w").exists()
        finish_backend(plain)  # a plain backend has nothing to release
    finally:
        torch.set_num_threads(before)
