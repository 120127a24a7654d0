"""hypops.data.io: MRC and NIfTI round trips carrying voxel size and origin, memory-mapped MRC reads, errors
naming the file for missing, truncated, corrupt, 2-D and wrong-dtype inputs, and normalisation."""

import numpy as np
import pytest

pytest.importorskip("mrcfile")
pytest.importorskip("nibabel")

from hypops.data import io  # noqa: E402


def _vol():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 7, 8)).astype(np.float32)


def test_mrc_round_trip_with_header(tmp_path):
    v = _vol()
    p = io.write_mrc(tmp_path / "a.mrc", v, voxel_size=(2.0, 3.0, 4.0), origin=(10.0, 20.0, 30.0))
    r = io.read_volume(p)
    assert r.data.shape == (6, 7, 8)
    np.testing.assert_array_equal(np.asarray(r.data), v)
    assert r.voxel_size == pytest.approx((2.0, 3.0, 4.0))
    assert r.origin == pytest.approx((10.0, 20.0, 30.0))
    assert isinstance(r.data, np.memmap) or not r.data.flags.owndata  # memory-mapped, not read whole


def test_mrc_labels_are_integers(tmp_path):
    lab = np.arange(6 * 7 * 8).reshape(6, 7, 8) % 5
    r = io.read_volume(io.write_mrc(tmp_path / "l.mrc", lab))
    assert np.issubdtype(r.data.dtype, np.integer)
    np.testing.assert_array_equal(np.asarray(r.data), lab)
    with pytest.raises(io.VolumeError, match="int16"):
        io.write_mrc(tmp_path / "big.mrc", lab * 100000)


def test_nifti_round_trip_with_header(tmp_path):
    v = _vol()
    p = io.write_nifti(tmp_path / "a.nii.gz", v, voxel_size=(1.5, 2.0, 2.5), origin=(-1.0, 2.0, 3.0))
    r = io.read_volume(p)
    np.testing.assert_allclose(r.data, v)
    assert r.voxel_size == pytest.approx((1.5, 2.0, 2.5))
    assert r.origin == pytest.approx((-1.0, 2.0, 3.0))


def test_errors_name_the_file(tmp_path):
    with pytest.raises(io.VolumeError, match="missing.mrc: no such file"):
        io.read_volume(tmp_path / "missing.mrc")
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    with pytest.raises(io.VolumeError, match="notes.txt: unknown volume format"):
        io.read_volume(bad)
    corrupt = tmp_path / "corrupt.mrc"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(io.VolumeError, match="corrupt.mrc: not a readable MRC file"):
        io.read_volume(corrupt)
    good = io.write_mrc(tmp_path / "t.mrc", _vol())
    trunc = tmp_path / "truncated.mrc"
    trunc.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(io.VolumeError, match="truncated.mrc: not a readable MRC file"):
        io.read_volume(trunc)
    import mrcfile

    with mrcfile.new(tmp_path / "image2d.mrc") as m:
        m.set_data(np.zeros((5, 5), np.float32))
    with pytest.raises(io.VolumeError, match=r"image2d.mrc: expected a 3-D volume, got 2-D"):
        io.read_volume(tmp_path / "image2d.mrc")
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 4), np.complex64), np.eye(4)), str(tmp_path / "c.nii"))
    with pytest.raises(io.VolumeError, match="c.nii: unsupported data type complex64"):
        io.read_volume(tmp_path / "c.nii")
    cn = tmp_path / "corrupt.nii.gz"
    cn.write_bytes(b"garbage")
    with pytest.raises(io.VolumeError, match="corrupt.nii.gz: not a readable NIfTI file"):
        io.read_volume(cn)


def test_normalize():
    rng = np.random.default_rng(1)
    raw = rng.normal(1000.0, 50.0, size=(20, 20, 20)).astype(np.float32)
    raw[0, 0, 0] = 1e9  # a hot pixel must not dominate the scale
    z = io.normalize(raw)
    assert z.dtype == np.float32
    assert abs(float(np.median(z))) < 0.1
    assert 0.8 < float(z[1:].std()) < 1.2
    assert float(z.max()) < 5


def test_normalized_view_blocks_equal_normalize():
    """hypops segment normalises a tomogram block by block (io.Normalized); every block equals the same slice
    of the whole-volume normalize."""
    rng = np.random.default_rng(2)
    raw = rng.normal(10.0, 3.0, size=(9, 11, 13)).astype(np.float32)
    raw[1, 2, 3] = 1e6
    whole = io.normalize(raw)
    view = io.Normalized(raw)
    assert view.shape == raw.shape and view.dtype == np.float32
    for index in [(slice(0, 4), slice(2, 9), slice(None)), (slice(5, 9),), (slice(1, 2), slice(2, 3), slice(3, 4))]:
        block = view[index]
        assert block.dtype == np.float32
        np.testing.assert_array_equal(block, whole[index])
