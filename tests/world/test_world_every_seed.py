"""Every (seed, index) makes a clip: seeds 0-30 x 16 clips at the default settings, none quarantined
(seed 5 clip 12 used to fail with 'no valid scene in 400 attempts')."""

import pytest

from fourdthinker.world import generate_world
from fourdthinker.world.clipgen import make_clip


def test_seed5_clip12_is_made():
    """The clip that used to be quarantined (its window came after Move Down + Roll)."""
    r = make_clip(5, 12)
    assert r.truth["object_motion"]["direction"] == "Moving Up"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_seeds_0_to_30_make_every_clip(tmp_path):
    for seed in range(31):
        out = tmp_path / f"seed{seed}"
        clips = generate_world(out, 16, seed=seed, workers=None, progress=False)
        assert len(clips) == 16, f"seed {seed}: {(out / 'quarantine.jsonl').read_text()}"
        assert not (out / "quarantine.jsonl").exists() or not (out / "quarantine.jsonl").read_text().strip()
