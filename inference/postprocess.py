"""Decoded candidates → detections in frame pixels: NMS, then the letterbox undone. Shared by
every engine (CPU and GPU paths end the same way, so their detections are equal).

End-to-end layouts skip NMS by default (``NmsConfig.rerun_on_end2end``): the graph already
suppressed what it meant to, and merging its overlapping detections again would change the
counts the reject rules see. They are still ordered best first and capped at ``max_detections``.
"""

from __future__ import annotations

import numpy as np

from inference.config import NmsConfig
from inference.decode import Candidates
from inference.detections import Detections
from inference.letterbox import LetterboxGeometry, boxes_to_frame
from inference.nms import nms


def finish_detections(
    candidates: Candidates, geometry: LetterboxGeometry, config: NmsConfig, layout: str
) -> Detections:
    if len(candidates.scores) == 0:
        return Detections.empty()
    if runs_nms(layout, config):
        keep = nms(candidates.xyxy, candidates.scores, candidates.class_id, config)
    else:
        keep = np.argsort(-candidates.scores, kind="stable")[: config.max_detections]
    return Detections(
        boxes_to_frame(candidates.xyxy[keep], geometry),
        candidates.scores[keep].astype(np.float32),
        candidates.class_id[keep].astype(np.int32),
    )


def runs_nms(layout: str, config: NmsConfig) -> bool:
    """Whether detections of this layout go through NMS here (see the module docstring)."""
    return layout != "end2end" or config.rerun_on_end2end
