"""Render a Run folder: heatmaps, overlays, the denoising timeline, word segmentation, contact sheets, mattes.

Functions come in two layers so a viewer can show one frame fast and the CLI can write whole files:

- arrays: :func:`select` (a word's map on the latent grid), :func:`upscale` (latent grid to pixels),
  :func:`normalize` (value range by mode), :func:`colorize` (colormap lookup table) and the frame builders
  :func:`heatmap_frames`, :func:`overlay_frames`, :func:`segmentation_frames`, :func:`timeline_frames`
  (uint8 [T, H, W, 3]; pass ``frames=[t]`` for a single frame) and :func:`grid_image` (a PIL image);
- files: :func:`render` writes MP4 (H.264) or PNG, by default into ``RUN/renders/``; ``kind="matte"`` writes the
  map alone (grayscale MP4, 16-bit PNG sequence or RGBA PNG), for compositing.

:func:`geometry` gives a run's pixel frames, size and fps (from meta.json, Wan's defaults as fallback).
"""

from .colors import colorbar_image, colorize, lookup_table, word_colors
from .frames import heatmap_frames, overlay_frames, segmentation_frames, timeline_frames
from .geometry import Geometry, geometry
from .grid import grid_image
from .normalize import NORM_MODES, Normalized, normalize
from .output import KINDS, default_output, render
from .selection import ESTIMATORS, parse_spec, select
from .upscale import latent_frame_index, upscale

__all__ = [
    "ESTIMATORS",
    "Geometry",
    "KINDS",
    "NORM_MODES",
    "Normalized",
    "colorbar_image",
    "colorize",
    "default_output",
    "geometry",
    "grid_image",
    "heatmap_frames",
    "latent_frame_index",
    "lookup_table",
    "normalize",
    "overlay_frames",
    "parse_spec",
    "render",
    "segmentation_frames",
    "select",
    "timeline_frames",
    "upscale",
    "word_colors",
]
