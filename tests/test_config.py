"""params.yaml validation: bad keys, types and values fail before any work, naming the key."""

from pathlib import Path

import pytest
import yaml

from intervention_training.config import ConfigError, load_section, validate_all

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["params.yaml", "configs/paper.yaml"])
def test_shipped_params_files_validate(name):
    sections = validate_all(ROOT / name)
    assert sections["rollouts"].samples_per_problem >= 1


def test_paper_config_carries_paper_settings():
    s = validate_all(ROOT / "configs/paper.yaml")
    assert s["model"].name == "Qwen/Qwen3-4B-Instruct-2507"
    assert s["rollouts"].samples_per_problem == 4
    r = s["rollouts"].sampling
    assert (r.temperature, r.top_p, r.top_k, r.max_new_tokens) == (0.7, 0.8, 20, 16384)
    assert s["proposals"].per_attempt == 4
    assert s["guided"].enabled and s["guided"].continuations == 32
    assert s["backend"].name == "vllm" and not s["proposals"].constrained_block


def test_paper_config_follows_the_authors_data_choices():
    from intervention_training.config import GRADE_STATUSES

    s = validate_all(ROOT / "configs/paper.yaml")
    # every attempt that is not correct is self-verified, cut-off ones included
    statuses = s["proposals"].attempt_statuses
    assert "truncated" in statuses
    assert set(statuses) == set(GRADE_STATUSES) - {"correct"}
    # the first surviving proposal of each failed attempt
    assert s["interventions"].dedup == "first_proposal"
    assert s["interventions"].max_per_attempt == 1
    # the authors' problem set, already filtered to hard problems
    p = s["problems"]
    assert (p.source, p.hub_name, p.split) == ("hub", "CMU-AIRe/InT-hard-set", "train")
    assert (p.columns.problem, p.columns.answer) == ("problem", "answer")
    assert s["grading"].hard_only is False


@pytest.mark.parametrize(
    "data, key",
    [
        ({"rollouts": {"samples_per_problem": 0}}, "rollouts.samples_per_problem"),
        ({"rollouts": {"sampling": {"temperature": -0.1}}}, "rollouts.sampling.temperature"),
        ({"rollouts": {"sampling": {"temprature": 0.5}}}, "rollouts.sampling.temprature"),
        ({"interventions": {"dedup": "random"}}, "interventions.dedup"),
        ({"proposals": {"per_attempt": "two"}}, "proposals.per_attempt"),
        ({"proposals": {"attempt_statuses": ["correct"]}}, "proposals.attempt_statuses"),
        ({"backend": {"name": "llamacpp"}}, "backend.name"),
        ({"grading": {"timeout_s": 0}}, "grading.timeout_s"),
    ],
)
def test_bad_values_name_the_key(tmp_path, data, key):
    with pytest.raises(ConfigError) as err:
        validate_all(write(tmp_path, data))
    assert key in str(err.value)
    assert "params.yaml" in str(err.value)


def test_unknown_section_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="rollout"):
        validate_all(write(tmp_path, {"rollout": {"samples_per_problem": 2}}))


def test_file_source_requires_a_path(tmp_path):
    with pytest.raises(ConfigError, match="problems.path"):
        load_section(write(tmp_path, {"problems": {"source": "file"}}), "problems")


def test_missing_sections_take_defaults(tmp_path):
    assert load_section(write(tmp_path, {}), "guided").enabled is False


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        validate_all(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollouts: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        validate_all(bad)


def test_evaluation_backend_overrides_only_its_keys(tmp_path):
    from intervention_training.config import backend_with

    s = validate_all(
        write(
            tmp_path,
            {
                "backend": {"name": "vllm", "dtype": "bfloat16", "kv_cache_gib": 2.0},
                "evaluation": {"backend": {"name": "transformers", "dtype": "float32"}},
            },
        )
    )
    merged = backend_with(s["backend"], s["evaluation"].backend)
    assert (merged.name, merged.dtype, merged.kv_cache_gib) == ("transformers", "float32", 2.0)
    assert backend_with(s["backend"], None) is s["backend"]
    shipped = validate_all(ROOT / "params.yaml")
    assert shipped["backend"].name == "vllm"
    assert backend_with(shipped["backend"], shipped["evaluation"].backend).name == "transformers"


@pytest.mark.parametrize("override", [{"nmae": "vllm"}, {"name": "llamacpp"}])
def test_a_bad_evaluation_backend_key_fails_by_name(tmp_path, override):
    with pytest.raises(ConfigError) as err:
        validate_all(write(tmp_path, {"evaluation": {"backend": override}}))
    assert "evaluation.backend" in str(err.value)
    assert next(iter(override)) in str(err.value)
