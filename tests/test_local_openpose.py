"""OpenPose keypoints drawn without a detector: limbs in the standard colours, at 60 % intensity."""

from __future__ import annotations

import pytest
from imagegen.providers.local._openpose import COLORS, PoseError, render_pose

# COCO-18 ids: 0 nose, 1 neck, 2 r-shoulder, 3 r-elbow, 4 r-wrist, 5 l-shoulder, 8 r-hip, 11 l-hip
JOINTS = {0: (100, 20), 1: (100, 60), 2: (60, 60), 3: (40, 120), 4: (30, 180), 5: (140, 60),
          8: (80, 160), 11: (120, 160)}


def pose(joints, normalized=False, size=(200, 240)):
    flat = [0.0] * 54
    for index, (x, y) in joints.items():
        flat[3 * index: 3 * index + 3] = [x / size[0], y / size[1], 1.0] if normalized else [x, y, 1.0]
    return {"canvas_width": size[0], "canvas_height": size[1], "people": [{"pose_keypoints_2d": flat}]}


def midpoint(a, b):
    (x1, y1), (x2, y2) = JOINTS[a], JOINTS[b]
    return (x1 + x2) // 2, (y1 + y2) // 2


def limb_color(limb_index):
    return tuple(int(c * 0.6) for c in COLORS[limb_index])


@pytest.mark.parametrize(("a", "b", "limb"), [(1, 2, 0), (1, 5, 1), (2, 3, 2), (3, 4, 3), (1, 8, 6), (1, 11, 9),
                                              (1, 0, 12)])
def test_limb_midpoints_have_the_limb_colour_at_60_percent(a, b, limb):
    image = render_pose(pose(JOINTS))
    assert image.getpixel(midpoint(a, b)) == limb_color(limb)


def test_joints_are_drawn_in_full_colour_on_top():
    image = render_pose(pose(JOINTS))
    assert image.size == (200, 240)
    assert image.getpixel(JOINTS[0]) == COLORS[0]
    assert image.getpixel(JOINTS[3]) == COLORS[3]


def test_a_missing_keypoint_draws_no_limb():
    joints = {k: v for k, v in JOINTS.items() if k != 3}  # no right elbow
    image = render_pose(pose(joints))
    (x1, y1), (x2, y2) = JOINTS[2], JOINTS[3]
    assert image.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == (0, 0, 0)
    assert image.getpixel(midpoint(1, 2)) == limb_color(0)


def test_normalized_coordinates_are_scaled_to_the_canvas():
    assert render_pose(pose(JOINTS, normalized=True)).getpixel(midpoint(1, 2)) == limb_color(0)


def test_background_is_black():
    assert render_pose(pose(JOINTS)).getpixel((195, 5)) == (0, 0, 0)


def test_bad_keypoints_name_the_field():
    with pytest.raises(PoseError, match=r"people\[0\].pose_keypoints_2d"):
        render_pose({"people": [{"pose_keypoints_2d": [1, 2, 3]}]})
    with pytest.raises(PoseError, match="people"):
        render_pose({"canvas_width": 10})
