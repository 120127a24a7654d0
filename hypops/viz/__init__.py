"""Reports: plotly HTML and PNG slices of segmentations (hypops.viz.report)."""
