"""The `asdflow` command itself: version, config checks."""

import pytest

from asdflow import __version__, cli


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"asdflow {__version__}"


def test_check_config_names_file_line_and_column_of_a_yaml_error(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("features:\n  n_frames: 96\n")
    bad = tmp_path / "my config.yaml"
    bad.write_text("features:\n  n_frames: 96\n  channel: [mix\n")
    assert cli.main(["check-config", str(good)]) == 0
    assert cli.main(["check-config", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:1: invalid YAML" in err


def test_check_config_refuses_a_list_at_top_level_and_a_missing_file(tmp_path, capsys):
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    assert cli.main(["check-config", str(listed)]) == 1
    assert cli.main(["check-config", str(tmp_path / "none.yaml")]) == 1
    err = capsys.readouterr().err
    assert "list.yaml: a config file must map keys" in err and "none.yaml: cannot read" in err
