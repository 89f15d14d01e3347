"""OpenPose keypoint JSON -> the pose image ControlNet-openpose models were trained on.

No detector: the caller gives keypoints (CMU OpenPose / sd-webui-openpose-editor format). The
drawing follows the published conventions (COCO-18 order, limb order and colours, 60 % limb
intensity, stick width 4, joint radius 4); see sd_local.md §9. Reimplemented with Pillow.
"""

from __future__ import annotations

import colorsys
import math
from typing import Any

from imagegen.errors import PoseError

STICK_WIDTH = 4
JOINT_RADIUS = 4
LIMB_INTENSITY = 0.6
# 1-based keypoint pairs, in drawing order.
LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
         (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
              (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]

Point = tuple[float, float] | None


def render_pose(pose: dict[str, Any], width: int | None = None, height: int | None = None):
    """Draw every person in ``pose`` on a black RGB canvas of the JSON's (or the given) size."""
    from PIL import Image, ImageDraw

    width = int(pose.get("canvas_width") or width or 512)
    height = int(pose.get("canvas_height") or height or 512)
    people = pose.get("people")
    if not isinstance(people, list):
        raise PoseError("pose JSON needs a 'people' list (OpenPose format)")
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, person in enumerate(people):
        body = _points(person.get("pose_keypoints_2d"), 18, f"people[{index}].pose_keypoints_2d", width, height)
        _draw_body(draw, body)
        for side in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            if person.get(side):
                _draw_hand(draw, _points(person[side], 21, f"people[{index}].{side}", width, height))
        if person.get("face_keypoints_2d"):
            face = _points(person["face_keypoints_2d"], 70, f"people[{index}].face_keypoints_2d", width, height)
            for point in face:
                if point:
                    _dot(draw, point, 3, (255, 255, 255))
    return canvas


def _points(flat: Any, count: int, field: str, width: int, height: int) -> list[Point]:
    """Triples (x, y, confidence) -> pixel points; confidence <= 0 or (-1, -1) means not detected."""
    if not isinstance(flat, list) or len(flat) < 3 * count or len(flat) % 3:
        raise PoseError(f"{field} must hold {count} (x, y, confidence) triples, got {len(flat or [])} numbers")
    try:
        triples = [(float(flat[i]), float(flat[i + 1]), float(flat[i + 2])) for i in range(0, 3 * count, 3)]
    except (TypeError, ValueError):
        raise PoseError(f"{field} must hold numbers") from None
    visible = [(x, y) for x, y, c in triples if c > 0 and (x, y) != (-1, -1)]
    normalized = bool(visible) and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in visible)
    scale_x, scale_y = (width, height) if normalized else (1, 1)
    return [(x * scale_x, y * scale_y) if c > 0 and (x, y) != (-1, -1) else None for x, y, c in triples]


def _draw_body(draw: Any, points: list[Point]) -> None:
    for index, (a, b) in enumerate(LIMBS):
        p, q = points[a - 1], points[b - 1]
        if p is None or q is None:
            continue
        color = tuple(int(c * LIMB_INTENSITY) for c in COLORS[index])
        draw.polygon(limb_polygon(p, q), fill=color)
    for index, point in enumerate(points):
        if point is not None:
            _dot(draw, point, JOINT_RADIUS, COLORS[index])


def limb_polygon(p: tuple[float, float], q: tuple[float, float], width: int = STICK_WIDTH) -> list[tuple[int, int]]:
    """The filled ellipse between two joints (the shape of cv2.ellipse2Poly at 1° steps)."""
    cx, cy = int((p[0] + q[0]) / 2), int((p[1] + q[1]) / 2)
    length = math.hypot(p[0] - q[0], p[1] - q[1])
    angle = math.radians(int(math.degrees(math.atan2(p[1] - q[1], p[0] - q[0]))))
    a, b = int(length / 2), width
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    points = []
    for degree in range(0, 361):
        t = math.radians(degree)
        x, y = a * math.cos(t), b * math.sin(t)
        points.append((round(cx + x * cos_a - y * sin_a), round(cy + x * sin_a + y * cos_a)))
    return points


def _draw_hand(draw: Any, points: list[Point]) -> None:
    for index, (a, b) in enumerate(HAND_EDGES):
        p, q = points[a], points[b]
        if p is None or q is None:
            continue
        r, g, bl = colorsys.hsv_to_rgb(index / len(HAND_EDGES), 1.0, 1.0)
        draw.line([p, q], fill=(int(r * 255), int(g * 255), int(bl * 255)), width=2)
    for point in points:
        if point is not None:
            _dot(draw, point, JOINT_RADIUS, (0, 0, 255))


def _dot(draw: Any, point: tuple[float, float], radius: int, color: tuple[int, int, int]) -> None:
    x, y = int(point[0]), int(point[1])
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
