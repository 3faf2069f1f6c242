"""--executor ray on a local Ray instance: same records as the process pool (slow: Ray starts in ~30 s)."""

import pytest

from fourdthinker.data.config import BuildConfig
from fourdthinker.data.runner import BuildError, build


@pytest.mark.slow
def test_ray_executor_matches_process_pool(world3, tmp_path):
    pytest.importorskip("ray")
    a = tmp_path / "proc"
    b = tmp_path / "ray"
    build(world3, a, BuildConfig(), workers=1, progress=False)
    build(world3, b, BuildConfig(), workers=2, executor="ray", progress=False)
    assert (a / "dift.jsonl").read_bytes() == (b / "dift.jsonl").read_bytes()


def test_unknown_executor_is_refused(world3, tmp_path):
    with pytest.raises(BuildError, match="unknown executor 'dask'"):
        build(world3, tmp_path / "x", BuildConfig(), executor="dask", progress=False)
