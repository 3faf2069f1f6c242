"""`data build --segmenter sam3 --sam3-model DIR` end to end, with the tiny random SAM3 saved to a local
folder and loaded back with from_pretrained (safetensors). Masks are meaningless; the code path is real."""

import pytest

from fourdthinker.data.config import BuildConfig
from fourdthinker.data.records import DiftRecord
from fourdthinker.data.runner import build
from fourdthinker.io import read_jsonl


@pytest.mark.slow
def test_build_with_sam3_from_local_folder(world3, tmp_path):
    import torch

    from fourdthinker.segment.sam3 import build_tiny_sam3

    torch.set_num_threads(2)
    model, proc = build_tiny_sam3()
    model.save_pretrained(tmp_path / "sam3")
    proc.save_pretrained(tmp_path / "sam3")
    assert (tmp_path / "sam3" / "model.safetensors").exists()
    out = tmp_path / "d"
    s = build(world3, out, BuildConfig(segmenter="sam3", sam3_model=str(tmp_path / "sam3")), workers=1, progress=False, limit=1)
    assert s.clips_ok + s.clips_quarantined == 1
    if s.clips_ok:
        for r in read_jsonl(out / "dift.jsonl"):
            DiftRecord(**r)
    else:  # random masks may legitimately fail a check; the reason must say which
        (row,) = read_jsonl(out / "quarantine.jsonl")
        assert row["reason"].startswith("ClipSkip")
