"""Config: one frozen object from params.yaml, unknown keys named by their dotted path."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import ConfigError, Params, flatten, load_params, parse_override

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_params_equal_the_defaults():
    # given the params.yaml in the repository, when loaded, then it states exactly the defaults
    assert load_params(ROOT / "params.yaml") == Params()


def test_missing_default_params_file_gives_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load_params() == Params()


def test_missing_explicit_params_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"params file not found: .*nope\.yaml"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("synthetic:\n  acounts: 10\n", "synthetic.acounts: extra inputs are not permitted"),
        ("synthetic:\n  segments:\n    smb: {share: 1, arr_median: 1, arr_sigma: 0, "
         "seat_price: 1, terms: {12: 1}, renewal_base: 1, shar: 2}\n",
         "synthetic.segments.smb.shar: extra inputs are not permitted"),
        ("mlflow:\n  tracking_url: x\n", "mlflow.tracking_url: extra inputs are not permitted"),
        ("features:\n  frequency: daily\n", "features.frequency: Input should be 'weekly'"),
        ("synthetic:\n  accounts: many\n", "synthetic.accounts: Input should be a valid integer"),
        ("synthetic:\n  accounts: 3\n", "synthetic.accounts: Input should be greater"),
        ("data:\n  source: duckdb\n", "data: Value error, source 'duckdb' needs data.duckdb_path"),
        ("synthetic:\n  segments:\n    smb: {share: 1, arr_median: 1, arr_sigma: 0, "
         "seat_price: 1, terms: {5: 1}, renewal_base: 1}\n",
         "synthetic.segments.smb.terms: Value error, contract terms must be"),
        ("- a list\n", "expected a mapping at the top level"),
        ("synthetic: [unclosed\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_params_name_the_dotted_key(tmp_path, yaml_text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as excinfo:
        load_params(path)
    assert expected in str(excinfo.value)


def test_overrides_are_parsed_as_yaml_and_validated(tmp_path):
    params = load_params(
        ROOT / "params.yaml",
        ["synthetic.accounts=250", "features.horizon_days=90", "data.cutoff=2026-01-31"],
    )
    assert params.synthetic.accounts == 250
    assert params.features.horizon_days == 90
    assert str(params.data.cutoff) == "2026-01-31"


def test_a_bare_off_is_the_word_not_false():
    # YAML 1.1 reads `off` as false; the grounding's "off" is written bare in params.yaml's
    # comment, so it must mean the option
    assert load_params(ROOT / "params.yaml").plan.exploration.ground == "off"  # as the file has it
    params = load_params(ROOT / "params.yaml", ["plan.exploration.ground=shrink"])
    assert params.plan.exploration.ground == "shrink"
    params = load_params(ROOT / "params.yaml", ["plan.exploration.ground=off"])
    assert params.plan.exploration.ground == "off"
    with pytest.raises(ConfigError, match=r"plan\.exploration\.ground"):
        load_params(ROOT / "params.yaml", ["plan.exploration.ground=true"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("synthetic.acounts=5", "synthetic.acounts: extra inputs are not permitted"),
        ("synthetic.accounts=lots", "synthetic.accounts: Input should be a valid integer"),
        ("synthetic.accounts", "--set expects dotted.key=value"),
        ("=5", "--set expects dotted.key=value"),
        ("synthetic..seed=1", "--set expects dotted.key=value"),
        ("output_dir.x=1", "output_dir is a value, not a section"),
    ],
)
def test_bad_overrides_are_rejected(override, expected):
    with pytest.raises(ConfigError) as excinfo:
        load_params(ROOT / "params.yaml", [override])
    assert expected in str(excinfo.value)


def test_environment_overrides_tracking_uri_and_set_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert load_params(ROOT / "params.yaml").mlflow.tracking_uri == "sqlite:///env.db"
    explicit = load_params(ROOT / "params.yaml", ["mlflow.tracking_uri=sqlite:///set.db"])
    assert explicit.mlflow.tracking_uri == "sqlite:///set.db"


def test_params_are_frozen():
    params = Params()
    with pytest.raises(ValidationError):
        params.synthetic.accounts = 5  # type: ignore[misc]


def test_parse_override_keeps_strings_and_numbers():
    assert parse_override("a.b=1") == (["a", "b"], 1)
    assert parse_override("a=sqlite:///x.db") == (["a"], "sqlite:///x.db")
    assert parse_override("a=") == (["a"], None)


def test_flatten_gives_dotted_keys_for_logging():
    flat = flatten(Params())
    assert flat["synthetic.accounts"] == 10000
    assert flat["data.raw_dir"] == "data/raw"
    assert flat["synthetic.segments.smb.terms.12"] == 0.6
    assert flat["mlflow.tracking_uri"] == "sqlite:///mlflow.db"
