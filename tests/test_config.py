"""nandoctor.yaml: safe-loaded, checked key by key, every error as
`file:line:col: what, expected, got` and exit 2, never a traceback."""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SCRIPTS
from nandoctor.config import ConfigError, Settings, _Loader, load_settings
from test_reliability import assert_one_paragraph, diagnose

# (YAML, the message after `file:line:col: `)
BAD_CONFIGS = [
    ("seed: [1\n", "2:1: not valid YAML: expected ',' or ']'"),
    ("timeout: 60\ntimeout: 90\n", "2:1: duplicate key 'timeout'"),
    ("probes:\n  lr_factor: [0.1]\n",
     "2:3: unknown key 'probes.lr_factor'. Did you mean 'probes.lr_factors'?"),
    ("jobs: 2\n", "1:1: unknown key 'jobs'. Did you mean 'probes.jobs'?"),
    ("probes: {lr_factors: fast}\n",
     "1:22: probes.lr_factors must be a list of numbers, got 'fast'"),
    ("threads: true\n", "1:10: threads must be a whole number, got True"),
    ("args: --lr 0.1\n", "1:7: args must be a list of strings, got '--lr 0.1'"),
    ("timeout: 0\n", "1:10: timeout must be greater than 0, got 0"),
    ("max_steps: -3\n", "1:12: max_steps must be greater than 0, got -3"),
    ("sweep:\n  end_lr: -1e2\n", "2:11: sweep.end_lr must be greater than 0"),
    ("watch:\n  steps_after_nonfinite: -1\n",
     "2:26: watch.steps_after_nonfinite must not be negative, got -1"),
    ("timeout: .nan\n", "1:10: timeout must be a finite number, got nan"),
    ("ci:\n  fail_on: never\n",
     "2:12: ci.fail_on must be one of error, warning, info, got 'never'"),
    ("probes: 3\n", "1:9: probes must be a mapping of `key: value` lines"),
    ("- timeout\n- 60\n", "1:1: the config must be a mapping"),
    ("? [a, b]\n: 1\n", "1:3: a key must be a plain name"),
    ("seed: !!python/object/apply:os.system [echo hi]\n",
     "1:7: the tag !!python/object/apply:os.system is not allowed"),
    ("!!python/object:collections.OrderedDict {}\n",
     "1:1: the tag !!python/object:collections.OrderedDict is not allowed"),
    ("timeout: !env TIMEOUT\n", "1:10: the tag !env is not allowed"),
    ("probes:\n  lr_factors: &f [*f]\n", "2:15: this value refers to itself"),
    ("timeout: 60\n\x00\x01", "2:1: not valid YAML: special characters"),
]


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "nandoctor.yaml"
    path.write_text(text)
    return load_settings(path)[0]


@pytest.mark.parametrize("text, message", BAD_CONFIGS)
def test_a_bad_config_is_named_at_its_line_and_column(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 'nandoctor.yaml'}:{message}")


def test_a_python_tag_is_refused_before_anything_runs(tmp_path):
    proof = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="is not allowed"):
        load(tmp_path, f"seed: !!python/object/apply:os.system [touch {proof}]\n")
    assert not proof.exists()


def test_the_documented_defaults_are_the_defaults():
    documented = ROOT / "configs" / "default.yaml"
    assert load_settings(documented)[0] == Settings()
    # ... and every key is documented there, none left to its default.
    assert yaml.load(documented.read_text(), Loader=_Loader) == asdict(Settings())


@pytest.mark.parametrize("written, value", [
    ("1e-3", 1e-3), ("1E-3", 1e-3), ("-1e-3", -1e-3), ("1e2", 100.0),
    ("1.0e-3", 1e-3), ("0.001", 1e-3), ("3", 3.0),
])
def test_1e_3_reads_as_a_number(tmp_path, written, value):
    settings = load(tmp_path, f"probes:\n  lr_factors: [{written}]\n")
    assert settings.probes.lr_factors == [value]


def test_arguments_reach_the_script_as_written(tmp_path):
    settings = load(tmp_path, "args: [--lr, 1e-3, --epochs, 010, --amp, yes]\n")
    assert settings.args == ["--lr", "1e-3", "--epochs", "010", "--amp", "yes"]


def test_an_empty_config_is_the_defaults(tmp_path):
    assert load(tmp_path, "# nothing changed\n") == Settings()


def test_a_config_that_is_missing_or_a_folder_is_named(tmp_path):
    for path, words in ((tmp_path / "nope.yaml", "config file not found"),
                        (tmp_path, "is a folder, not a config file")):
        with pytest.raises(ConfigError, match=re.escape(f"{path}: {words}")):
            load_settings(path)


def test_nothing_in_nandoctor_can_unpickle_or_evaluate_what_it_reads():
    """Configs are safe-loaded and reports are JSON: no loader that runs code."""
    unsafe = re.compile(r"\bpickle\b|torch\.load|yaml\.unsafe|yaml\.full_load|"
                        r"Loader=yaml\.(Full|Unsafe)?Loader|\beval\(|\bexec\(|"
                        r"\bmarshal\b|\bshelve\b")
    sources = sorted((ROOT / "nandoctor").rglob("*.py"))
    assert sources
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sources
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if unsafe.search(line)]
    assert offenders == []


# -- through the command line -----------------------------------------------

@pytest.mark.parametrize("text, message", BAD_CONFIGS)
def test_a_bad_config_exits_2_with_one_paragraph(tmp_path, text, message):
    (tmp_path / "nd.yaml").write_text(text)
    result = diagnose("--config", "nd.yaml", str(SCRIPTS / "rel_train.py"),
                      cwd=tmp_path)
    assert result.returncode == 2
    assert_one_paragraph(result, f"nd.yaml:{message}")


def test_a_missing_config_exits_2(tmp_path):
    result = diagnose("--config", "nope.yaml", "train.py", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_paragraph(result, "nope.yaml: config file not found")


@pytest.mark.parametrize("flag, value", [
    ("--timeout", "0"), ("--timeout", "-5"), ("--timeout", "nan"),
    ("--max-steps", "0"), ("--threads", "-1"),
])
def test_a_budget_that_is_not_positive_exits_2(tmp_path, flag, value):
    result = diagnose(flag, value, str(SCRIPTS / "rel_train.py"), cwd=tmp_path)
    assert result.returncode == 2
    assert_one_paragraph(result, f"{flag} must be a finite number greater than 0")


@pytest.mark.parametrize("command", [["--config", "nandoctor.yaml"], []])
def test_script_and_args_from_the_config_need_nothing_else(tmp_path, command):
    """Named with --config, or found as ./nandoctor.yaml."""
    (tmp_path / "nandoctor.yaml").write_text(
        f"script: {SCRIPTS / 'rel_train.py'}\nargs: [--steps, 2, --lr, 1e-3]\n")
    seen = tmp_path / "seen.json"
    result = diagnose(*command, cwd=tmp_path, env={"REL_REPORT": str(seen)})
    assert result.returncode == 0, result.stderr
    assert json.loads(seen.read_text())["argv"] == ["--steps", "2", "--lr", "1e-3"]
    assert "healthy: 2 steps" in " ".join(result.stdout.split())
