"""Reading and writing volumes: MRC (cryo-EM tomograms, via mrcfile, memory-mapped) and NIfTI (MRI, via
nibabel), plus intensity normalisation.

``read_volume(path)`` returns a ``Volume``: ``data`` (a read-only numpy array view for MRC -- memory-mapped,
so a tomogram larger than memory is read tile by tile as it is indexed), ``voxel_size`` (z, y, x) and
``origin`` (z, y, x), in the file's units (Å for MRC, mm for NIfTI). ``write_mrc`` writes a label or
intensity volume with that voxel size and origin, so a segmentation overlays its tomogram in any viewer.

Errors name the file and what is wrong with it (missing, truncated or corrupt, not 3-D, an unsupported
dtype) -- never a traceback from inside mrcfile or nibabel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".map", ".st", ".ali")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class VolumeError(ValueError):
    """A volume file that cannot be used; the message names the file."""


@dataclass
class Volume:
    data: np.ndarray  # [Z, Y, X]
    voxel_size: tuple = (1.0, 1.0, 1.0)  # (z, y, x)
    origin: tuple = (0.0, 0.0, 0.0)  # (z, y, x)
    path: str | None = None
    meta: dict = field(default_factory=dict)


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(MRC_SUFFIXES):
        return "mrc"
    raise VolumeError(f"{path}: unknown volume format (expected one of {', '.join(MRC_SUFFIXES + NIFTI_SUFFIXES)})")


def _check_array(path, data) -> None:
    if data.ndim != 3:
        raise VolumeError(f"{path}: expected a 3-D volume, got {data.ndim}-D data of shape {tuple(data.shape)}")
    if min(data.shape) < 1:
        raise VolumeError(f"{path}: the volume is empty, shape {tuple(data.shape)}")
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise VolumeError(f"{path}: unsupported data type {data.dtype} (expected integers or floats)")


def read_volume(path) -> Volume:
    """Reads an MRC (memory-mapped) or NIfTI volume; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise VolumeError(f"{path}: no such file")
    kind = _kind(path)
    if kind == "mrc":
        import mrcfile

        try:
            # permissive=False: a truncated or malformed file raises here instead of yielding garbage
            mrc = mrcfile.mmap(path, mode="r", permissive=False)
        except Exception as e:
            raise VolumeError(f"{path}: not a readable MRC file ({type(e).__name__}: {e})") from None
        data = mrc.data
        if data is None:
            raise VolumeError(f"{path}: the MRC file has no data block")
        _check_array(path, data)
        vs = mrc.voxel_size
        origin = mrc.header.origin
        return Volume(data, (float(vs.z), float(vs.y), float(vs.x)),
                      (float(origin.z), float(origin.y), float(origin.x)), str(path), {"format": "mrc"})
    import nibabel

    try:
        img = nibabel.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as e:
        raise VolumeError(f"{path}: not a readable NIfTI file ({type(e).__name__}: {e})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    _check_array(path, data)
    # NIfTI stores (x, y, z); the rest of hypops works in (z, y, x) like MRC
    data = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    zooms = img.header.get_zooms()[:3]
    offset = img.affine[:3, 3]
    return Volume(data, (float(zooms[2]), float(zooms[1]), float(zooms[0])),
                  (float(offset[2]), float(offset[1]), float(offset[0])), str(path), {"format": "nifti"})


def write_mrc(path, data, voxel_size=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Path:
    """Writes a [Z, Y, X] volume (labels as int16 when they fit, else float32) with the given voxel size
    and origin (z, y, x). The file is written to a temporary name and renamed, so a reader never sees a
    half-written file."""
    import mrcfile

    path = Path(path)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise VolumeError(f"{path}: write_mrc needs a 3-D array, got shape {tuple(arr.shape)}")
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        if arr.size and (arr.min() < np.iinfo(np.int16).min or arr.max() > np.iinfo(np.int16).max):
            raise VolumeError(f"{path}: labels outside the int16 range of MRC mode 1")
        arr = arr.astype(np.int16)
    else:
        arr = arr.astype(np.float32)
    tmp = path.with_name(path.name + ".tmp")
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(arr))
        mrc.voxel_size = (float(voxel_size[2]), float(voxel_size[1]), float(voxel_size[0]))  # (x, y, z)
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(origin[2]), float(origin[1]),
                                                                          float(origin[0]))
    tmp.replace(path)
    return path


def write_nifti(path, data, voxel_size=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Path:
    """Writes a [Z, Y, X] volume as NIfTI (stored x, y, z) with the voxel size and origin (z, y, x)."""
    import nibabel

    path = Path(path)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise VolumeError(f"{path}: write_nifti needs a 3-D array, got shape {tuple(arr.shape)}")
    affine = np.diag([voxel_size[2], voxel_size[1], voxel_size[0], 1.0])
    affine[:3, 3] = (origin[2], origin[1], origin[0])
    nibabel.save(nibabel.Nifti1Image(np.transpose(arr, (2, 1, 0)), affine), str(path))
    return path


class Normalized:
    """A lazily normalised view of a [Z, Y, X] volume: indexing it reads that block from ``data`` (e.g. a
    memory map) and returns it normalised as ``normalize`` would (float32, identical values), so a tomogram
    is normalised tile by tile instead of as a whole float32 copy (a 512³ volume: 512 MiB, and twice that
    while the copy is made). ``shape``/``ndim``/``dtype`` describe the normalised volume."""

    def __init__(self, data, *, lo=0.5, hi=99.5):
        self.data = data
        self.shape = tuple(data.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)
        flat = np.asarray(data).reshape(-1)
        # statistics on a strided subsample: a memory-mapped tomogram is not read whole for them
        step = max(1, flat.size // 2_000_000)
        sample = np.asarray(flat[::step], dtype=np.float64)
        self.clip = tuple(np.percentile(sample, [lo, hi]))
        clipped = np.clip(sample, *self.clip)
        self.mean, std = clipped.mean(), clipped.std()
        self.std = std if std > 0 else 1.0

    def apply(self, block) -> np.ndarray:
        """Normalises an array of raw values with this volume's statistics."""
        return ((np.clip(np.asarray(block), *self.clip).astype(np.float32) - self.mean) / self.std).astype(np.float32)

    def __getitem__(self, index) -> np.ndarray:
        return self.apply(self.data[index])


def normalize(data, *, lo=0.5, hi=99.5) -> np.ndarray:
    """Robust z-score (float32): intensities clipped to the [lo, hi] percentiles, then centred and scaled by
    the standard deviation -- the synthetic data's intensities are O(1), and a tomogram's raw values (any
    offset, any gain, rare hot pixels) are brought to that scale. Computed on a subsample when the volume
    is large, so a memory-mapped tomogram is not read whole for the statistics. ``Normalized(data)`` gives
    the same values block by block."""
    view = Normalized(data, lo=lo, hi=hi)
    return view.apply(data)
