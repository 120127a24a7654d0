"""The segmentation report: ``report.html`` (plotly, self-contained: the plotly library is embedded so the
file opens offline) and PNG slices (matplotlib) for papers.

The HTML holds, per volume shown: the three orthogonal centre slices of the volume next to each level's
segmentation (and the ground truth when there is one), a 3D view of the clusters (a subsample of voxels,
coloured by cluster), and the latent means on the Poincaré disk coloured by cluster and by truth (for
D > 2 the latents are projected on their first two principal directions; the disk is then a projection).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd"]


def _centre_slices(vol: np.ndarray):
    z, y, x = (s // 2 for s in vol.shape)
    return {"z": vol[z], "y": vol[:, y], "x": vol[:, :, x]}


def _disk_coords(latents: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, 2]: the coordinates themselves for D = 2, else the first two principal directions."""
    if latents.shape[1] == 2:
        return latents
    centred = latents - latents.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred[: min(len(centred), 20000)], full_matrices=False)
    return latents @ vt[:2].T


def save_pngs(out_dir, volume: np.ndarray, segmentations: dict, truths: dict | None = None, prefix="slices"):
    """One PNG per level: the volume's three centre slices, the segmentation (and the truth) below them.
    Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    out_dir = Path(out_dir)
    paths = []
    cmap = ListedColormap(PALETTE)
    for level, seg in segmentations.items():
        rows = [("volume", volume, "gray", None)] + [(f"segmentation ({level})", seg, cmap, (0, len(PALETTE) - 1))]
        if truths and level in truths:
            rows.append(("truth", truths[level], cmap, (0, len(PALETTE) - 1)))
        fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
        for r, (name, vol, cm, lim) in enumerate(rows):
            for c, (axis, sl) in enumerate(_centre_slices(np.asarray(vol)).items()):
                ax = axes[r][c]
                kw = {} if lim is None else {"vmin": lim[0], "vmax": lim[1], "interpolation": "nearest"}
                ax.imshow(sl, cmap=cm, **kw)
                ax.set_title(f"{name}, {axis} = centre", fontsize=8)
                ax.axis("off")
        fig.tight_layout()
        path = out_dir / f"{prefix}_{level}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(path, *, title: str, volume: np.ndarray, segmentations: dict, latents: np.ndarray,
                 truths: dict | None = None, metrics_table: str | None = None, notes: str = "",
                 max_points: int = 6000, seed: int = 0) -> Path:
    """Writes the HTML report. ``segmentations``: {level name: [Z, Y, X] labels}; ``latents``: [D, Z, Y, X]
    latent means; ``truths``: {level name: labels} where known; ``metrics_table``: an HTML table to show."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rng = np.random.default_rng(seed)
    parts = []
    levels = list(segmentations)
    # slices: one row per level (segmentation, truth), plus the volume
    n_rows = 1 + len(levels) * (2 if truths else 1)
    titles = [f"volume, {a} = centre" for a in "zyx"]
    for lv in levels:
        titles += [f"{lv}: clusters, {a}" for a in "zyx"]
        if truths:
            titles += [f"{lv}: truth, {a}" for a in "zyx"]
    fig = make_subplots(rows=n_rows, cols=3, subplot_titles=titles, vertical_spacing=0.03)
    for c, sl in enumerate(_centre_slices(volume).values()):
        fig.add_trace(go.Heatmap(z=sl, colorscale="gray", showscale=False), row=1, col=c + 1)
    r = 2
    for lv in levels:
        rows = [segmentations[lv]] + ([truths[lv]] if truths and lv in truths else [])
        for vol in rows:
            for c, sl in enumerate(_centre_slices(np.asarray(vol)).values()):
                fig.add_trace(go.Heatmap(z=sl, colorscale=[[i / (len(PALETTE) - 1), col] for i, col in
                                                            enumerate(PALETTE)], zmin=0, zmax=len(PALETTE) - 1,
                                         showscale=False), row=r, col=c + 1)
            r += 1
        if truths and lv not in truths:
            r += 1
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(height=260 * n_rows, width=900, title="orthogonal slices")
    parts.append(fig.to_html(full_html=False, include_plotlyjs=True))

    # 3D view of the finest segmentation: a subsample of voxels, coloured by cluster
    finest = segmentations[levels[-1]]
    idx = rng.choice(finest.size, size=min(max_points, finest.size), replace=False)
    zz, yy, xx = np.unravel_index(idx, finest.shape)
    lab = finest.reshape(-1)[idx]
    fig3 = go.Figure(go.Scatter3d(x=xx, y=yy, z=zz, mode="markers",
                                  marker=dict(size=2, color=[PALETTE[v % len(PALETTE)] for v in lab])))
    fig3.update_layout(title=f"clusters in 3D ({levels[-1]}, {len(idx)} voxels)", height=600, width=700)
    parts.append(fig3.to_html(full_html=False, include_plotlyjs=False))

    # latent means on the Poincaré disk
    D = latents.shape[0]
    pts = latents.reshape(D, -1).T[idx]
    xy = _disk_coords(pts)
    n_disk = 1 + (1 if truths else 0)
    fig_d = make_subplots(rows=1, cols=n_disk, subplot_titles=["coloured by cluster"] + (
        ["coloured by truth"] if truths else []))
    t = np.linspace(0, 2 * np.pi, 200)
    for col, colour_by in enumerate([finest] + ([truths[levels[-1]]] if truths and levels[-1] in truths else [])):
        c = colour_by.reshape(-1)[idx]
        fig_d.add_trace(go.Scatter(x=np.cos(t), y=np.sin(t), mode="lines", line=dict(color="black", width=1),
                                   showlegend=False), row=1, col=col + 1)
        fig_d.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", showlegend=False,
                                   marker=dict(size=3, color=[PALETTE[v % len(PALETTE)] for v in c])),
                        row=1, col=col + 1)
    fig_d.update_xaxes(range=[-1.05, 1.05])
    fig_d.update_yaxes(range=[-1.05, 1.05], scaleanchor="x")
    fig_d.update_layout(title="latent means on the Poincaré disk" + (" (first two principal directions)" if D > 2
                                                                       else ""), height=480, width=900)
    parts.append(fig_d.to_html(full_html=False, include_plotlyjs=False))

    body = "\n".join(f"<section>{p}</section>" for p in parts)
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
           f"<h1>{html.escape(title)}</h1>{metrics_table or ''}<p>{html.escape(notes)}</p>{body}</body></html>")
    path = Path(path)
    path.write_text(doc)
    return path
