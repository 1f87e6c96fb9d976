"""The command line: train and reproduce, end to end on small sizes."""

import json
import subprocess
import sys
from pathlib import Path

from ncsn_toy.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "ncsn_toy", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_train_writes_loadable_checkpoints(tmp_path):
    result = run_cli("train", "--steps", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("score_net_two_gaussians", "ncsn_two_gaussians", "ncsn_four_gaussians"):
        path = tmp_path / f"{name}.pt"
        assert str(path) in result.stdout  # says where they went
        assert load_checkpoint(path).metadata["train"]["steps"] == 3


def test_reproduce_fast_prints_the_tables_and_writes_json(tmp_path):
    out = tmp_path / "numbers.json"
    result = run_cli("reproduce", "--fast", "--json", str(out))
    assert result.returncode == 0, result.stderr
    for heading in ("### Samplers", "### Relative score error", "### Weight error against score evaluations",
                    "### How sigma enters the network"):
        assert heading in result.stdout
    data = json.loads(out.read_text())
    labels = [row["sampler"] for row in data["samplers"]]
    assert any(label.startswith("Langevin, exact score") for label in labels)
    assert any(label.startswith("annealed Langevin, trained NCSN") for label in labels)
    assert len(data["samplers"]) == result.stdout.count("| two gaussians |") + result.stdout.count(
        "| four gaussians |") - len(data["sigma_input"])
    for row in data["samplers"]:  # every number is a number, not NaN
        assert all(0 <= w <= 1 for seed in row["weights"] for w in seed)
        assert all(d == d for d in row["distance"])


def test_bad_arguments():
    assert run_cli("train", "--steps", "0").returncode != 0
    assert run_cli("reproduce", "--seeds", "0").returncode != 0
    assert run_cli("train", "--only", "nope").returncode != 0
