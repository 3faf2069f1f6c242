"""Video I/O: Eq. 1 overlay, pixel capping, writing, probing, sampling (seek == sequential == naive),
and every error case, each a one-line message naming the file."""

import wave

import numpy as np
import pytest
from typer.testing import CliRunner

from fourdthinker.cli import app
from fourdthinker.video import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoError,
    VideoNotFoundError,
    cap_pixels,
    overlay,
    probe,
    sample_frames,
    sample_frames_naive,
    target_times,
    write_video,
)
from fourdthinker.video.overlay import mask_outline


def numbered_frames(n, h=48, w=64):
    """Frame i is a flat grey level 4*i (decodes back to ~4*i) with a moving white bar: its index
    can be read back from the decoded pixels."""
    out = []
    for i in range(n):
        f = np.full((h, w, 3), (4 * i) % 256, np.uint8)
        f[:, (i * 3) % (w - 4):(i * 3) % (w - 4) + 4] = 255
        out.append(f)
    return out


def frame_number(rgb):
    """Read a frame's index back: median of the grey background / 4."""
    return int(round(float(np.median(rgb[:, :, 1])) / 4))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("vid")
    frames = numbered_frames(60)  # 60 frames at 12 fps = 5 s
    return {
        "short_gop": write_video(d / "g6.mp4", frames, 12, gop=6),  # keyframe every 0.5 s -> seek
        "long_gop": write_video(d / "gdef.mp4", frames, 12),  # x264 default -> sequential
        "mpeg4": write_video(d / "m4.mp4", frames, 12, codec="mpeg4", gop=12),
        "dir": d,
    }


# ---------------------------------------------------------------- Eq. 1 overlay (hand computed)
def test_overlay_matches_eq1_by_hand():
    f = np.array([[[100, 50, 0], [200, 200, 200]]], np.uint8)  # [1, 2, 3]
    m = np.array([[True, False]])
    o = overlay(f, m)  # alpha 0.4, red
    # masked pixel: 0.6*(100,50,0) + 0.4*(255,0,0) = (60+102, 30, 0) = (162, 30, 0); unmasked unchanged
    assert o.tolist() == [[[162, 30, 0], [200, 200, 200]]]
    soft = overlay(f, np.array([[0.5, 1.0]]), alpha=0.5, color=(0, 0, 255))
    # a*M = 0.25: 0.75*(100,50,0) + 0.25*(0,0,255) = (75, 37.5, 63.75) -> rint (75, 38, 64)
    # a*M = 0.5 : 0.5*(200,200,200) + 0.5*(0,0,255) = (100, 100, 227.5) -> rint half-even (100,100,228)
    assert soft.tolist() == [[[75, 38, 64], [100, 100, 228]]]
    assert o.dtype == np.uint8 and f.tolist()[0][0] == [100, 50, 0], "input must not be modified"


def test_overlay_rejects_bad_input():
    f = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        overlay(f, np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="alpha"):
        overlay(f, np.zeros((4, 4), bool), alpha=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay(f, np.full((4, 4), 2.0))


def test_mask_outline():
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    o = mask_outline(m)
    assert o.sum() == 8 and not o[2, 2] and o[1, 1]


def test_cap_pixels_sizes_and_arrays():
    assert cap_pixels((480, 640), None) == (480, 640)
    assert cap_pixels((480, 640), 10**6) == (480, 640)  # within budget: unchanged, never upscaled
    # 480*640 = 307200 > 76800: scale sqrt(76800/307200) = 0.5 -> (240, 320)
    assert cap_pixels((480, 640), 76800) == (240, 320)
    h, w = cap_pixels((1080, 1920), 200_704)
    assert h * w <= 200_704 and abs(w / h - 1920 / 1080) < 0.01
    img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert cap_pixels(img, 76800).shape == (240, 320, 3)
    with pytest.raises(ValueError, match="positive"):
        cap_pixels((0, 5), 10)


# ---------------------------------------------------------------- write + probe
def test_write_and_probe(videos):
    info = probe(videos["short_gop"])
    assert (info.width, info.height, info.n_frames, info.codec) == (64, 48, 60, "h264")
    assert info.fps == pytest.approx(12) and info.duration_s == pytest.approx(5.0)
    assert info.keyframe_interval_s == pytest.approx(0.5)
    assert probe(videos["long_gop"]).keyframe_interval_s > 1.0
    assert probe(videos["mpeg4"]).codec == "mpeg4"


def test_write_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "x.mp4", [np.zeros((5, 6, 3), np.uint8)], 10)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "y.mp4", [], 10)
    assert not list(tmp_path.iterdir()), "a failed write must leave nothing behind"


# ---------------------------------------------------------------- sampling
def test_target_times():
    assert target_times(5.0, 12, 1.0) == [0, 1, 2, 3, 4]  # last frame at 59/12 = 4.92 s
    assert target_times(5.0 + 1 / 12, 12, 1.0) == [0, 1, 2, 3, 4, 5]
    assert target_times(10.0, 10, 1.0, max_frames=4) == [0, 3, 6, 9]
    assert target_times(5.0, 12, 2.0)[:3] == [0, 0.5, 1.0]


def test_target_times_in_a_window():
    # 9 s at 4 fps: last frame at 8.75 s. window (2, 5): t = 2 + k / fps up to 5
    assert target_times(9.0, 4, 1.0, window=(2, 5)) == [2, 3, 4, 5]
    assert target_times(9.0, 4, 2.0, window=(2, 4)) == [2, 2.5, 3, 3.5, 4]
    assert target_times(9.0, 4, 2.0, max_frames=3, window=(2, 5)) == [2, 3.5, 5]  # linspace(0, 6, 3) = 0, 3, 6
    assert target_times(9.0, 4, 1.0, window=(7.5, 20)) == [7.5, 8.5]  # clipped at the last frame (8.75)
    with pytest.raises(ValueError, match="after the video's last frame"):
        target_times(9.0, 4, 1.0, window=(8.9, 12))
    with pytest.raises(ValueError, match="0 <= start < end"):
        target_times(9.0, 4, 1.0, window=(3, 3))


def test_sample_frames_in_a_window(videos):
    # numbered frames: frame i carries its index; 12 fps, so t = 1.5 s is frame 18
    sf = sample_frames(videos["short_gop"], 2.0, window=(1.5, 3.0))
    assert sf.times_s == [1.5, 2.0, 2.5, 3.0] and sf.frame_indices == [18, 24, 30, 36]
    whole = sample_frames(videos["short_gop"], 2.0)
    by_t = dict(zip(whole.times_s, whole.frames, strict=True))
    assert all(np.array_equal(f, by_t[t]) for f, t in zip(sf.frames, sf.times_s, strict=True))


@pytest.mark.parametrize("name", ["short_gop", "long_gop", "mpeg4"])
@pytest.mark.parametrize("fps", [1.0, 2.0, 3.0])
def test_seek_and_sequential_pick_the_same_right_frames(videos, name, fps):
    seek = sample_frames(videos[name], fps, method="seek")
    seq = sample_frames(videos[name], fps, method="sequential")
    naive = sample_frames_naive(videos[name], fps)
    expected = [int(round(t * 12)) for t in target_times(5.0, 12, fps)]  # nearest frame to each target
    assert seek.frame_indices == seq.frame_indices == naive.frame_indices == expected
    for a, b, c in zip(seek.frames, seq.frames, naive.frames, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c), "paths must be bit-identical"
    assert [frame_number(f) for f in seq.frames] == expected, "decoded content is the indexed frame"
    assert seq.times_s == pytest.approx([i / 12 for i in expected])


def test_auto_method_follows_keyframe_spacing(videos):
    assert sample_frames(videos["short_gop"]).method == "seek"
    assert sample_frames(videos["long_gop"]).method == "sequential"


def test_max_pixels_and_max_frames(videos):
    s = sample_frames(videos["long_gop"], 2.0, max_pixels=48 * 64 // 4, max_frames=3)
    assert len(s) == 3 and s.frames[0].shape == (24, 32, 3)
    assert s.frame_indices == [0, 24, 54]  # targets 0, 2.0, 4.5 s of [0, 0.5, .., 4.5]
    seek = sample_frames(videos["long_gop"], 2.0, max_pixels=48 * 64 // 4, max_frames=3, method="seek")
    assert all(np.array_equal(a, b) for a, b in zip(s.frames, seek.frames, strict=True))


# ---------------------------------------------------------------- error cases
def _one_line_naming(err, path):
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert isinstance(err.value, VideoError)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.mp4"
    for fn in (probe, sample_frames):
        with pytest.raises(VideoNotFoundError) as e:
            fn(p)
        _one_line_naming(e, p)
    with pytest.raises(VideoNotFoundError, match="not a regular file"):
        probe(tmp_path)


def test_zero_length_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(EmptyVideoError) as e:
        sample_frames(p)
    _one_line_naming(e, p)


def test_truncated_and_garbage_files(tmp_path, videos):
    data = videos["long_gop"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom (at the end) lost
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for p in (cut, junk):
        with pytest.raises(CorruptVideoError) as e:
            sample_frames(p)
        _one_line_naming(e, p)


def test_truncated_file_with_index_at_front(tmp_path):
    """moov at the front (faststart): the cut file parses, then the stream ends early -> CorruptVideoError."""
    import av

    src = tmp_path / "full.mp4"
    with av.open(str(src), mode="w", options={"movflags": "faststart"}) as out:
        st = out.add_stream("libx264", rate=12)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for f in numbered_frames(60):
            fr = av.VideoFrame.from_ndarray(f, format="rgb24")
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    data = src.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "index must be at the front for this case"
    assert len(sample_frames(src, fps=2.0)) == 10  # the intact file: 5 s at 2 fps
    cut = tmp_path / "cut_front_index.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptVideoError, match="truncated") as e:
        sample_frames(cut, fps=2.0)
    _one_line_naming(e, cut)


def test_damaged_stream_data(tmp_path, videos):
    """Container intact, coded frames overwritten with zeros: no frame decodes -> CorruptVideoError."""
    data = bytearray(videos["short_gop"].read_bytes())
    i = data.find(b"mdat")
    size = int.from_bytes(data[i - 4:i], "big")
    data[i + 4:i - 4 + size] = bytes(size - 8)
    p = tmp_path / "zeroed.mp4"
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptVideoError) as e:
        sample_frames(p)
    _one_line_naming(e, p)


def test_audio_only_file(tmp_path):
    p = tmp_path / "tone.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(np.arange(8000) / 5) * 3000).astype("<i2").tobytes())
    with pytest.raises(NoVideoStreamError, match="audio") as e:
        probe(p)
    _one_line_naming(e, p)


def test_unsupported_codec(tmp_path, videos):
    """Rename the H.264 sample entry's fourcc: FFmpeg no longer knows the codec."""
    data = videos["short_gop"].read_bytes()
    assert data.count(b"avc1") >= 1
    p = tmp_path / "weird.mp4"
    p.write_bytes(data.replace(b"avc1", b"zzz9").replace(b"avcC", b"zzzC"))
    with pytest.raises(UnsupportedCodecError) as e:
        sample_frames(p)
    _one_line_naming(e, p)


# ---------------------------------------------------------------- CLI
def test_cli_probe_and_sample_sheet(tmp_path, videos):
    r = CliRunner().invoke(app, ["video", "probe", str(videos["short_gop"])])
    assert r.exit_code == 0 and "keyframe_interval_s" in r.output
    sheet = tmp_path / "sheet.png"
    r = CliRunner().invoke(app, ["video", "sample", str(videos["long_gop"]), "--fps", "2", "--sheet", str(sheet),
                                 "--out-dir", str(tmp_path / "png")])
    assert r.exit_code == 0, r.output
    assert sheet.stat().st_size > 0 and len(list((tmp_path / "png").glob("frame_*.png"))) == 10
    r = CliRunner().invoke(app, ["video", "sample", str(tmp_path / "missing.mp4")])
    assert r.exit_code == 2 and "no such file" in r.output
