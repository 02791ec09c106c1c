"""Rollout videos with event overlays.

Frames come from ``PushTEnv.render_frame()`` (or any RGB uint8 images of one size). Events
-- a perturbation of the block, a policy swap in the controller, anything else -- are drawn
on the frame where they happen and on the next ``persist`` frames: a coloured border plus
a text banner, so that a 10 fps video shows them long enough to be seen. Every frame may
also carry a caption (e.g. step and coverage) at the bottom.

GIF is written with imageio (Pillow plugin); MP4 with OpenCV's ``mp4v`` encoder (no
ffmpeg is needed). Text is drawn with OpenCV, which gym-pusht already requires.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Sequence

import cv2
import numpy as np

EVENT_COLORS = {
    "perturbation": (230, 40, 40),  # red
    "policy_swap": (40, 110, 230),  # blue
    "success": (30, 170, 60),  # green
}
"""RGB colour per event kind; other kinds are drawn in orange."""
_DEFAULT_COLOR = (240, 140, 20)


@dataclasses.dataclass(frozen=True)
class FrameEvent:
    """Something that happened at frame ``frame`` (0-based index into the frame list).

    kind: ``"perturbation"``, ``"policy_swap"``, ``"success"`` or any other string
        (sets the colour, see ``EVENT_COLORS``).
    text: banner text, e.g. ``"push 40 px"`` or ``"policy #12"``; defaults to ``kind``.
    """

    frame: int
    kind: str
    text: str = ""


def _put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thickness: int) -> None:
    # Dark outline first so the text reads on any background.
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def annotate_frame(frame: np.ndarray, events: Sequence[FrameEvent] = (), caption: str | None = None,
                   border: int | None = None) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3) uint8 with a border in the first event's colour, one
    banner line per event at the top, and ``caption`` at the bottom."""
    img = np.ascontiguousarray(frame, dtype=np.uint8).copy()
    h, w = img.shape[:2]
    scale = max(h, w) / 640.0
    border = border if border is not None else max(3, int(round(8 * scale)))
    if events:
        color = EVENT_COLORS.get(events[0].kind, _DEFAULT_COLOR)
        img[:border], img[-border:], img[:, :border], img[:, -border:] = color, color, color, color
        line_h = int(28 * scale) + 6
        for i, ev in enumerate(events):
            y0 = border + i * line_h
            banner_color = EVENT_COLORS.get(ev.kind, _DEFAULT_COLOR)
            img[y0:y0 + line_h, border:w - border] = banner_color
            _put_text(img, ev.text or ev.kind, (border + 6, y0 + line_h - 8), 0.8 * scale, (255, 255, 255),
                      max(1, int(round(2 * scale))))
    if caption:
        _put_text(img, caption, (border + 6, h - border - 8), 0.7 * scale, (255, 255, 255),
                  max(1, int(round(2 * scale))))
    return img


def annotate_rollout(frames: Sequence[np.ndarray], events: Iterable[FrameEvent] = (),
                     captions: Sequence[str] | None = None, persist: int = 3) -> list[np.ndarray]:
    """Annotated copies of ``frames``: each event is shown on its frame and the next
    ``persist - 1`` frames. ``captions``: one string per frame (or None)."""
    if persist < 1:
        raise ValueError(f"persist must be >= 1 frame, got {persist}")
    active: list[list[FrameEvent]] = [[] for _ in frames]
    # Perturbations first: the border takes the first event's colour.
    for ev in sorted(events, key=lambda e: (e.frame, e.kind != "perturbation")):
        if not 0 <= ev.frame < len(frames):
            raise ValueError(f"event {ev} is outside the {len(frames)} frames")
        for f in range(ev.frame, min(ev.frame + persist, len(frames))):
            active[f].append(ev)
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"got {len(captions)} captions for {len(frames)} frames")
    return [annotate_frame(fr, active[i], captions[i] if captions is not None else None)
            for i, fr in enumerate(frames)]


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 10.0) -> str:
    """Write RGB uint8 frames (all one size) to ``path``: ``.gif`` or ``.mp4``. Returns the path."""
    path = os.fspath(path)
    if not frames:
        raise ValueError("no frames to write")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    ext = os.path.splitext(path)[1].lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if ext == ".gif":
        import imageio.v3 as iio

        # Pillow plugin: duration per frame in milliseconds; loop=0 repeats forever.
        iio.imwrite(path, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    elif ext == ".mp4":
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV could not open an mp4v writer for {path}")
        try:
            for fr in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(fr, dtype=np.uint8), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    else:
        raise ValueError(f"unsupported video extension {ext!r} for {path}: use .gif or .mp4")
    return path


def write_rollout_video(path: str | os.PathLike, frames: Sequence[np.ndarray],
                        events: Iterable[FrameEvent] = (), captions: Sequence[str] | None = None,
                        fps: float = 10.0, persist: int = 3) -> str:
    """Annotate a rollout (see ``annotate_rollout``) and write it as GIF or MP4."""
    return write_video(path, annotate_rollout(frames, events, captions, persist), fps)


def events_from_marks(marks: Sequence[dict], title: str = "") -> tuple[list[FrameEvent], list[str]]:
    """Events and captions from per-frame mark dicts, the form the simulation node records.

    ``marks[i]`` describes frame ``i`` and may hold ``"perturbation": [dx, dy]`` (the
    displacement applied, px), ``"generation": int`` (policy generation that produced the
    action) and ``"swap": bool`` (that generation differs from the previous frame's).
    Captions read ``"<title>  step k  policy #g"``: k counts control steps (frames with a
    ``generation``), so a perturbation's extra frame keeps the step of the frame before it and a
    300-step episode ends at "step 300".
    """
    events, captions = [], []
    step, generation = 0, None
    for i, mark in enumerate(marks):
        mark = mark or {}
        if mark.get("perturbation") is not None:
            dx, dy = (float(v) for v in mark["perturbation"])
            events.append(FrameEvent(i, "perturbation", f"block pushed {np.hypot(dx, dy):.0f} px"))
        if mark.get("swap"):
            events.append(FrameEvent(i, "policy_swap", f"new policy #{mark.get('generation', '?')}"))
        if mark.get("generation") is not None:
            step += 1
            generation = mark["generation"]
        caption = f"{title}  step {step}" if title else f"step {step}"
        if generation is not None:
            caption += f"  policy #{generation}"
        captions.append(caption)
    return events, captions


def write_rollout(path: str | os.PathLike, frames: Sequence[np.ndarray], marks: Sequence[dict],
                  fps: float = 10.0, persist: int = 3, title: str = "") -> str:
    """``write_rollout_video`` with events and captions taken from per-frame mark dicts
    (see ``events_from_marks``; ``title`` leads every caption, e.g. the evaluation cell);
    ``len(marks) == len(frames)``."""
    if len(marks) != len(frames):
        raise ValueError(f"got {len(marks)} marks for {len(frames)} frames")
    events, captions = events_from_marks(marks, title)
    return write_rollout_video(path, frames, events, captions, fps=fps, persist=persist)


__all__ = ["EVENT_COLORS", "FrameEvent", "annotate_frame", "annotate_rollout", "events_from_marks",
           "write_video", "write_rollout", "write_rollout_video"]
