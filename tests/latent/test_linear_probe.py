"""latent/linear_probe.py: the read-out finds a label that is linearly present and not one that is absent."""

from __future__ import annotations

import pytest
import torch

from fourdthinker.latent.linear_probe import fit_softmax, linear_probe


def _data(n, d=8, seed=0, informative=True):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    X = torch.randn(n, d, generator=g)
    if informative:
        X[:, 0] += 4.0 * (y == 1)
        X[:, 1] += 4.0 * (y == 2)
    return X, y


def test_separable_labels_are_read_and_noise_is_not():
    Xtr, ytr = _data(300, seed=0)
    Xte, yte = _data(200, seed=1)
    r = linear_probe(Xtr, ytr, Xte, yte)
    assert r.accuracy > 0.9 and r.n_train == 300 and r.n_test == 200 and r.wd in r.val
    Xtr, ytr = _data(300, seed=0, informative=False)
    Xte, yte = _data(2000, seed=1, informative=False)
    r = linear_probe(Xtr, ytr, Xte, yte)
    assert abs(r.accuracy - 1 / 3) < 0.06  # chance
    assert 0.25 < r.majority < 0.42


def test_fit_softmax_on_a_hand_case():
    # two points, one feature: x = -1 -> class 0, x = +1 -> class 1; no penalty -> both right
    W, b = fit_softmax(torch.tensor([[-1.0], [1.0]]), torch.tensor([0, 1]), 2, wd=0.0, steps=50)
    assert (torch.tensor([[-1.0], [1.0]]) @ W + b).argmax(1).tolist() == [0, 1]
    # a huge penalty leaves W ~ 0
    W, _ = fit_softmax(torch.tensor([[-1.0], [1.0]]), torch.tensor([0, 1]), 2, wd=1e6, steps=50)
    assert W.abs().max() < 1e-4


def test_errors():
    with pytest.raises(ValueError, match="too few"):
        linear_probe(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(1, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="differ in length"):
        linear_probe(torch.zeros(5, 3), torch.tensor([0, 1]), torch.zeros(1, 3), torch.tensor([0]))


@pytest.mark.parametrize("extra", [[], ["--only-block", "2", "--latent-target", "pair"]])
def test_the_script_end_to_end(tmp_path, extra):
    """scripts/latent_linear_probe.py on toy DIFT records and a tiny model: decodes, reads out, and
    ends with its name: value lines."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fourdthinker.latent.toy import make_toy_dift

    make_toy_dift(tmp_path / "toy", 24, size=56, n_frames=2)
    script = Path(__file__).parents[2] / "scripts" / "latent_linear_probe.py"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    out = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "toy"), "--model", "qwen2.5-vl-tiny",
                          "--n", "24", "--target-cache", str(tmp_path / "lt"), "--max-frames", "2", "--threads", "1", *extra],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(ln.split(": ", 1) for ln in out.stdout.splitlines() if ": " in ln and not ln.startswith("camera"))
    assert set(lines) == {"majority", "target_linear_acc", "fed_linear_acc[qwen2.5-vl-tiny]"}
    assert all(0.0 <= float(v) <= 1.0 for v in lines.values())
    want = "targets z = pair, block 2 alone" if extra else "targets z = image, blocks 1-2"
    assert want in out.stdout
    if extra:
        assert list((tmp_path / "lt").rglob("K4-pair/*/*.safetensors"))
