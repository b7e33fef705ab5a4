"""Opening a backend from params: options passed through, the resume wrapper, release on success."""

import pytest
import torch

from intervention_training.backends import load_backend, open_backend
from intervention_training.config import BackendParams
from intervention_training.resume import ResumableBackend


def test_load_backend_passes_options(tiny_model_dir):
    before = torch.get_num_threads()
    try:
        plain = load_backend(tiny_model_dir, BackendParams(batch_size=3, num_threads=1))
        assert plain.batch_size == 3 and torch.get_num_threads() == 1
        assert plain.model_id == str(tiny_model_dir)
    finally:
        torch.set_num_threads(before)


def test_open_backend_wraps_for_resume_and_releases_shards_on_success(tiny_model_dir, tmp_path):
    work = tmp_path / "w"
    with open_backend(tiny_model_dir, BackendParams(shard_requests=5), work) as backend:
        assert isinstance(backend, ResumableBackend) and backend.shard_size == 5
        assert backend.supports_json_trigger
        work.mkdir()
    assert not work.exists()
    with open_backend(tiny_model_dir, BackendParams()) as plain:  # nothing to release
        assert not isinstance(plain, ResumableBackend)


def test_open_backend_keeps_shards_when_the_stage_fails(tiny_model_dir, tmp_path):
    work = tmp_path / "w"
    with pytest.raises(RuntimeError, match="stage failed"):
        with open_backend(tiny_model_dir, BackendParams(), work):
            work.mkdir()
            (work / "shard-0.json").write_text("{}")
            raise RuntimeError("stage failed")
    assert (work / "shard-0.json").exists()  # the rerun resumes from here


def test_the_model_loads_on_first_use_so_bad_inputs_fail_first(tiny_model_dir, tmp_path):
    from intervention_training.artifacts import ArtifactError
    from intervention_training.config import RolloutsParams
    from intervention_training.rollouts import write_rollouts

    with open_backend(tiny_model_dir, BackendParams(), tmp_path / "w") as backend:
        assert not backend.backend.loaded  # wrapping for resume does not load it
        assert backend.tokenizer is not None
        assert backend.backend.loaded
    with open_backend(tmp_path / "no-such-model", BackendParams()) as backend:
        # the problems file is checked before the (here impossible) model load
        with pytest.raises(ArtifactError, match="missing.parquet"):
            write_rollouts(
                tmp_path / "missing.parquet", tmp_path / "r.parquet", RolloutsParams(), backend
            )
        assert not backend.loaded
