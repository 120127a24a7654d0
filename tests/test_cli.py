"""The hypops command line at toy size: demo writes every file SPEC §5 names (metrics.json with its keys),
train writes model.pt / log.jsonl and resumes to the same step count, segment writes one label volume per
cluster count with the input's shape and voxel size, latents.npy and the instance tables; user errors are one
line naming the file, exit status 1."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mrcfile")

from hypops import cli  # noqa: E402
from hypops.data import io  # noqa: E402

TINY = ["--size", "20", "--batch-size", "4", "--no-progress"]


def test_demo_writes_the_contract_files(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--out", str(out), "--steps", "2", "--train-volumes", "1", "--test-volumes", "1", *TINY])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| level | clusters | Dice (hypops demo)" in printed and "0.952" in printed
    for name in ("model.pt", "log.jsonl", "metrics.json", "report.html", "segmentation.mrc",
                 "slices_level1.png", "slices_level2.png", "slices_level3.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["dice"]) == set(m["iou"]) == set(m["published"]) == {"level1", "level2", "level3"}
    assert all(0.0 <= v <= 1.0 for v in m["dice"].values())
    assert m["published"]["level1"] == 0.952 and m["seconds"] > 0
    seg = io.read_volume(out / "segmentation.mrc").data
    assert seg.shape == (20, 20, 20) and set(np.unique(seg)) <= set(range(6))
    assert "<html" in (out / "report.html").read_text()[:200].lower()


def test_train_resume_and_segment(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", "toy", "--toy-volumes", "1", "--batch-size", "2", "--seed", "3", "--out", str(run),
            "--checkpoint-every", "1", "--no-progress"]
    # a tiny dense model keeps this fast; the toy volumes are 50³ (the published size)
    assert cli.main([*args, "--steps", "2"]) == 0
    assert cli.main([*args, "--steps", "3", "--resume"]) == 0
    steps = [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    for ln in (run / "log.jsonl").read_text().splitlines():
        assert {"step", "loss", "recon", "kl", "triplet"} <= set(json.loads(ln))

    rng = np.random.default_rng(0)
    vol = io.write_mrc(tmp_path / "vol.mrc", rng.normal(size=(12, 14, 16)).astype(np.float32),
                       voxel_size=(2.0, 2.0, 2.0), origin=(1.0, 2.0, 3.0))
    out = tmp_path / "seg"
    assert cli.main(["segment", "--checkpoint", str(run / "model.pt"), "--data", str(vol), "--clusters", "2,3",
                     "--out", str(out), "--tile", "8", "--no-progress"]) == 0
    for k in (2, 3):
        s = io.read_volume(out / f"segmentation_k{k}.mrc")
        assert s.data.shape == (12, 14, 16) and s.voxel_size == pytest.approx((2.0, 2.0, 2.0))
        assert s.origin == pytest.approx((1.0, 2.0, 3.0))
        assert set(np.unique(s.data)) <= set(range(k))
        header = (out / f"instances_k{k}.csv").read_text().splitlines()[0]
        assert header == "cluster,instance,voxels,centroid_z,centroid_y,centroid_x"
    lat = np.load(out / "latents.npy")
    assert lat.shape[1:] == (12, 14, 16) and np.all(np.linalg.norm(lat, axis=0) < 1)


def test_user_errors_are_one_line(tmp_path):
    bad = tmp_path / "broken.mrc"
    bad.write_bytes(b"\0" * 64)
    proc = subprocess.run([sys.executable, "-m", "hypops.cli", "segment", "--checkpoint", str(tmp_path / "none.pt"),
                           "--data", str(bad), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "none.pt" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "hypops.cli", "train", "--steps", "1", "--out", str(tmp_path / "r"),
                           "--data", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "broken.mrc" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "hypops.cli", "--help"], capture_output=True, text=True)
    for cmd in ("demo", "train", "segment", "bench", "info"):
        assert cmd in proc.stdout


def test_segment_paper_preset_with_stride(tmp_path, capsys):
    """A paper-preset checkpoint (from hypops train) segments a toy volume through the CLI: with --stride 2 the
    label volumes and latents.npy have the input's shape, the encoded voxels hold the patch latents, and the
    flags that do not apply to a checkpoint are errors naming them."""
    import torch

    from hypops.data import make_toy_volume
    from hypops.models import segment as seg_mod
    from hypops.pipeline import DEFAULT_SMOOTH, load_model

    run = tmp_path / "paper"
    assert cli.main(["train", "--preset", "paper", "--data", "toy", "--toy-volumes", "1", "--batch-size", "2",
                     "--steps", "1", "--out", str(run), "--no-progress"]) == 0
    raw = make_toy_volume(5, size=20).volume.numpy()[3:12, 4:14, 2:13].astype(np.float32)  # 9 x 10 x 11
    vol = io.write_mrc(tmp_path / "toy.mrc", raw, voxel_size=(3.0, 3.0, 3.0))
    out = tmp_path / "seg"
    assert cli.main(["segment", "--checkpoint", str(run / "model.pt"), "--data", str(vol), "--clusters", "2,3",
                     "--out", str(out), "--stride", "2", "--no-progress"]) == 0
    for k in (2, 3):
        s = io.read_volume(out / f"segmentation_k{k}.mrc")
        assert s.data.shape == (9, 10, 11) and s.voxel_size == pytest.approx((3.0, 3.0, 3.0))
        assert set(np.unique(s.data)) <= set(range(k))
        # nearest-neighbour upsampling: each voxel has the label of the encoded voxel nearest to it
        np.testing.assert_array_equal(seg_mod.upsample_nearest(s.data[::2, ::2, ::2], (9, 10, 11), 2), s.data)
        assert (out / f"instances_k{k}.csv").is_file()
    lat = np.load(out / "latents.npy")
    assert lat.shape == (2, 9, 10, 11) and np.all(np.linalg.norm(lat, axis=0) < 1)
    model, _ = load_model(run / "model.pt")
    # latents.npy holds what was clustered: the patch latents smoothed with the default sigma, in grid steps
    want = seg_mod.smooth_latents(seg_mod.embed_patches(model, io.Normalized(io.read_volume(vol).data), stride=2),
                                  DEFAULT_SMOOTH / 2, c=model.config.c)
    torch.testing.assert_close(torch.from_numpy(lat[:, ::2, ::2, ::2].copy()), want, rtol=1e-5, atol=1e-6)
    assert not list(out.glob("*.tmp*"))  # the grid latents' temporary file is gone

    capsys.readouterr()
    assert cli.main(["segment", "--checkpoint", str(run / "model.pt"), "--data", str(vol), "--out", str(out),
                     "--tile", "8", "--no-progress"]) == 1
    assert "--tile" in capsys.readouterr().err
    dense = tmp_path / "dense"
    assert cli.main(["train", "--data", "toy", "--toy-volumes", "1", "--batch-size", "2", "--steps", "1",
                     "--out", str(dense), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["segment", "--checkpoint", str(dense / "model.pt"), "--data", str(vol), "--out", str(out),
                     "--stride", "2", "--no-progress"]) == 1
    assert "--stride" in capsys.readouterr().err
    assert cli.main(["segment", "--checkpoint", str(dense / "model.pt"), "--data", str(vol), "--out", str(out),
                     "--smooth", "-1", "--no-progress"]) == 1
    assert "--smooth" in capsys.readouterr().err

    # scripts/sweep_smooth.py (how DEFAULT_SMOOTH was chosen) runs on a dense checkpoint: one row per sigma
    import runpy

    sweep = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "sweep_smooth.py"))
    assert sweep["seed_list"]("100-102,7") == [100, 101, 102, 7]
    capsys.readouterr()
    assert sweep["main"]([str(dense / "model.pt"), "--seeds", "5", "--sigmas", "0,1", "--size", "20"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["0", "1"]
    assert all(0 <= float(v) <= 1 for r in rows for v in r.split("|")[2:6])


def test_smooth_default_in_help_is_the_pipelines():
    from hypops.pipeline import DEFAULT_SMOOTH

    assert float(cli.SMOOTH_HELP) == DEFAULT_SMOOTH
