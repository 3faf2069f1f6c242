"""A tiny synthetic world shared by the data-pipeline tests (built once per session)."""

import shutil

import pytest


@pytest.fixture(scope="session")
def world3(tmp_path_factory):
    from fourdthinker.world import generate_world

    out = tmp_path_factory.mktemp("world") / "w"
    generate_world(out, 3, seed=7, workers=1, progress=False)
    return out


@pytest.fixture()
def world_copy(world3, tmp_path):
    """A private, writable copy of the tiny world (tests may break its clips)."""
    dst = tmp_path / "w"
    shutil.copytree(world3, dst)
    return dst
