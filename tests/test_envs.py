"""envs/asdflow.yaml (the environment of `--sdm conda` jobs) pins what pyproject.toml pins."""

import re
import tomllib

import yaml
from conftest import REPO

# Needed by the process that runs Snakemake, not inside a job's environment.
RUNNER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def pins(requirements: list[str], where: str) -> dict[str, str]:
    found = {}
    for line in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line.strip())
        assert match, f"{where}: {line!r} is not pinned as name==version"
        found[match[1].lower()] = match[2]
    return found


def test_conda_environment_has_the_same_pins_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = pins(project["dependencies"], "pyproject.toml")
    env = yaml.safe_load((REPO / "envs/asdflow.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    have = pins(pip, "envs/asdflow.yaml")
    assert have == {k: v for k, v in wanted.items() if k not in RUNNER_ONLY}
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_every_rule_runs_in_the_conda_environment():
    rules = sorted((REPO / "rules").glob("*.smk"))
    for path in rules:
        text = path.read_text()
        n_rules = len(re.findall(r"^\s*rule \w+:", text, flags=re.M))
        assert text.count("conda:\n") == n_rules, f"{path.name}: a rule without `conda: ENV`"
