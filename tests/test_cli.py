"""Command line: help lists the commands; bad input exits non-zero with a message."""
import subprocess
import sys

import pytest

from workbench.cli import BENCHES, EXPERIMENTS, main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "workbench", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for cmd in ("demo", "train", "data", "experiment", "bench"):
        assert cmd in out


def test_data_command_reports_folders(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "digits" in out


def test_unknown_experiment_exits_2(capsys):
    assert main(["experiment", "no-such-table"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_registered_experiments_resolve():
    import importlib
    for name, (module, function, _) in EXPERIMENTS.items():
        assert callable(getattr(importlib.import_module(module), function)), name


def test_train_rejects_unknown_model(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        main(["train", "--model", "nope", "--data", "digits", "--out", str(tmp_path / "m.pt"),
              "--epochs", "1"])


def test_registered_benches_have_main():
    import importlib
    for name, (module, _) in BENCHES.items():
        assert callable(importlib.import_module(module).main), name


def test_bench_rejects_unknown_suite(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "no-such-suite"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bench_forwards_arguments(monkeypatch):
    import workbench.bench.codegen_bench as codegen_bench
    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 0

    monkeypatch.setattr(codegen_bench, "main", fake_main)
    assert main(["bench", "codegen", "--quick", "--out", "x"]) == 0
    assert seen["argv"] == ["--quick", "--out", "x"]
