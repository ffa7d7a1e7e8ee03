"""Decoded candidates → detections in frame pixels: NMS, then the letterbox undone. Shared by
every engine (CPU and GPU paths end the same way, so their detections are equal)."""

from __future__ import annotations

import numpy as np

from inference.config import NmsConfig
from inference.decode import Candidates
from inference.detections import Detections
from inference.letterbox import LetterboxGeometry, boxes_to_frame
from inference.nms import nms


def finish_detections(candidates: Candidates, geometry: LetterboxGeometry, config: NmsConfig) -> Detections:
    if len(candidates.scores) == 0:
        return Detections.empty()
    keep = nms(candidates.xyxy, candidates.scores, candidates.class_id, config)
    return Detections(
        boxes_to_frame(candidates.xyxy[keep], geometry),
        candidates.scores[keep].astype(np.float32),
        candidates.class_id[keep].astype(np.int32),
    )
