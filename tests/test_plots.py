"""fourdthinker.plots.save_figure: same picture as a plain savefig, atomic, folder made, figure closed."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fourdthinker.plots import save_figure  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [2, 0, 1], label="x")
    ax.legend()
    return fig


def test_save_figure_same_bytes_as_savefig_and_closes(tmp_path):
    ref = tmp_path / "ref.png"
    fig = _figure()
    fig.savefig(ref, dpi=110)
    plt.close(fig)
    fig = _figure()
    out = save_figure(fig, tmp_path / "new" / "deeper" / "plot.png", dpi=110)
    assert out == tmp_path / "new" / "deeper" / "plot.png"
    assert out.read_bytes() == ref.read_bytes()  # the picture is unchanged by the helper
    assert not plt.fignum_exists(fig.number)  # closed
    assert [p.name for p in out.parent.iterdir()] == ["plot.png"]  # no temp file left behind


def test_save_figure_default_dpi_and_failure_closes(tmp_path):
    ref = tmp_path / "ref.png"
    fig = _figure()
    fig.savefig(ref)
    plt.close(fig)
    assert save_figure(_figure(), tmp_path / "d.png").read_bytes() == ref.read_bytes()
    fig = _figure()
    with pytest.raises(ValueError, match="notaformat"):
        save_figure(fig, tmp_path / "bad.notaformat")
    assert not plt.fignum_exists(fig.number) and not (tmp_path / "bad.notaformat").exists()
