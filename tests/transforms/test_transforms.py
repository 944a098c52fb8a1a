"""Unit tests of the registered angiography transforms: frame preparation, photometric and geometric
augmentation, flips and the view-angle rule, dropping objects that leave the frame."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from sam3.train.data.collator import collate_fn_api
from sam3_angio.data.dataset import AngioDatapoint
from sam3_angio.view_angles import ViewAngles
from sam3.train.data.sam3_image_dataset import Datapoint, FindQueryLoaded, Image, InferenceMetadata, Object
from sam3.train.transforms.basic_for_api import NormalizeAPI, ToTensorAPI

from sam3_angio.registry import TRANSFORMS
from sam3_angio.transforms import (
    PrepareXRayFrame,
    RandomAffineWithTargets,
    RandomFlipWithViewAngles,
    XRayPhotometricAugment,
    apply_affine,
    apply_flip,
    dropped_object_counts,
    prepare_frame,
    reset_dropped_object_counts,
)
from sam3_angio.transforms.geometric import affine_args, map_boxes
from sam3_angio.transforms.photometric import quantum_noise, underfill
from sam3_angio.transforms.targets import box_from_mask

H, W = 48, 64  # non-square on purpose: catches (H, W) / (W, H) mix-ups


# ---------------------------------------------------------------------------------------------- helpers
def _rect(y0, y1, x0, x1, h=H, w=W) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _blob(h=H, w=W) -> torch.Tensor:
    """An L-shaped, asymmetric vessel-like mask (so rotations and flips are distinguishable)."""
    m = torch.zeros(h, w, dtype=torch.uint8)
    m[12:16, 20:44] = 1
    m[12:34, 40:44] = 1
    return m


def _query(text, obj_ids, first_obj_id=-1):
    return FindQueryLoaded(
        query_text=text,
        image_id=0,
        object_ids_output=list(obj_ids),
        is_exhaustive=True,
        query_processing_order=0,
        inference_metadata=InferenceMetadata(
            coco_image_id=-1, original_image_id=-1, original_category_id=1, original_size=(H, W),
            object_id=first_obj_id, frame_index=-1,
        ),
    )


def _datapoint(masks, queries, image="gray", angles=(30.0, -20.0), known=True) -> Datapoint:
    """A Datapoint as SAM3 holds it after DecodeRle: PIL RGB image, uint8 masks, pixel-edge XYXY boxes."""
    g = torch.Generator().manual_seed(0)
    base = (torch.rand(H, W, generator=g) * 0.3 + 0.5).numpy()
    for m in masks:
        if m is not None:
            base = np.where(m.numpy() > 0, 0.1, base)  # dark vessels on a lighter background
    u8 = np.round(base * 255).astype(np.uint8)
    if image == "gray":
        data = PILImage.fromarray(np.repeat(u8[..., None], 3, axis=2), mode="RGB")
    else:  # a [0, 1] tensor, as after ToTensorAPI
        data = torch.from_numpy(u8).float().div(255)[None].repeat(3, 1, 1)
    objects = []
    for i, m in enumerate(masks):
        box = box_from_mask(m).clone() if m is not None else torch.tensor([20.0, 10.0, 30.0, 18.0])
        objects.append(Object(bbox=box, area=float(m.sum()) if m is not None else 80.0, object_id=i, segment=m))
    view = ViewAngles(*angles) if known else None
    return AngioDatapoint(find_queries=queries, images=[Image(data=data, objects=objects, size=(H, W))], view=view)


def _expected_position(pts, angle_deg, scale, t, hw):
    """Independent oracle of the documented convention: pixel-edge (x, y) ``(N, 2)`` ->
    ``A (p - c) + c + t`` with ``c = (W/2, H/2)``, ``A = scale * R(angle)`` (positive = counter-clockwise
    on screen, x right, y down)."""
    h, w = hw
    a = math.radians(angle_deg)
    A = scale * torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float64)
    c = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64)
    return (pts.double() - c) @ A.T + c + torch.tensor(t, dtype=torch.float64)


def _mask_box_consistent(dp: Datapoint) -> None:
    for obj in dp.images[0].objects:
        assert torch.isfinite(obj.bbox).all()
        if obj.segment is not None:
            assert obj.segment.sum() > 0
            assert torch.equal(obj.bbox.view(4), box_from_mask(obj.segment)), "box is not the box of its mask"


def _targets_snapshot(dp: Datapoint):
    return (
        [(o.bbox.clone(), o.area, None if o.segment is None else o.segment.clone()) for o in dp.images[0].objects],
        [(q.query_text, list(q.object_ids_output)) for q in dp.find_queries],
        dp.view,
        dp.view is not None,
        dp.images[0].size,
    )


def _assert_same_targets(a, b) -> None:
    objs_a, q_a, ang_a, known_a, size_a = a
    objs_b, q_b, ang_b, known_b, size_b = b
    assert len(objs_a) == len(objs_b)
    for (ba, aa, sa), (bb, ab, sb) in zip(objs_a, objs_b):
        assert torch.equal(ba, bb) and aa == ab
        assert (sa is None and sb is None) or torch.equal(sa, sb)
    assert q_a == q_b and ang_a == ang_b and known_a == known_b and size_a == size_b


def test_box_from_mask_matches_sam3_masks_to_boxes():
    from sam3.model.box_ops import masks_to_boxes

    for m in (_blob(), _rect(0, 1, 0, 1), _rect(47, 48, 63, 64), _rect(0, 48, 0, 64), torch.zeros(H, W, dtype=torch.uint8)):
        assert torch.equal(box_from_mask(m), masks_to_boxes(m[None].bool()).view(4))
    assert torch.equal(box_from_mask(_rect(10, 20, 30, 40)), torch.tensor([30.0, 10.0, 40.0, 20.0]))


def test_all_transforms_are_registered_under_their_target_paths():
    targets = TRANSFORMS.targets()
    for cls in (PrepareXRayFrame, XRayPhotometricAugment, RandomAffineWithTargets, RandomFlipWithViewAngles):
        path = f"{cls.__module__}.{cls.__qualname__}"
        assert targets[path] == cls.__name__


# ---------------------------------------------------------------------------------------------- frames
@pytest.mark.parametrize(
    "frame, expected",
    [
        (np.array([[0, 51, 255]], dtype=np.uint8), [0.0, 0.2, 1.0]),
        (np.array([[0, 4095, 2047]], dtype=np.uint16), [0.0, 1.0, 2047 / 4095]),  # 12-bit in uint16
        (np.array([[0, 65535, 1]], dtype=np.uint16), [0.0, 1.0, 1 / 65535]),
        (np.array([[0.0, 0.25, 1.0]], dtype=np.float32), [0.0, 0.25, 1.0]),
        (np.array([[0.0, 127.5, 255.0]], dtype=np.float64), [0.0, 0.5, 1.0]),
        (np.array([[-100.0, 0.0, 300.0]], dtype=np.float32), [0.0, 0.25, 1.0]),  # min-max fallback
    ],
)
def test_prepare_frame_maps_each_dtype_to_unit_range(frame, expected):
    out = prepare_frame(frame)
    assert out.dtype == np.float32 and out.shape == frame.shape
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_prepare_frame_bits_stored_and_invert():
    frame = np.array([[0, 1023, 512]], dtype=np.uint16)
    np.testing.assert_allclose(prepare_frame(frame, bits_stored=12)[0], [0, 1023 / 4095, 512 / 4095], atol=1e-6)
    np.testing.assert_allclose(prepare_frame(frame, invert=True)[0], [1, 0, 1 - 512 / 1023], atol=1e-6)


def test_prepare_frame_turns_colour_into_luma_and_refuses_nan():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    np.testing.assert_allclose(prepare_frame(rgb), 0.299, atol=1e-3)
    bad = np.ones((4, 4), dtype=np.float32)
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        prepare_frame(bad)


@pytest.mark.parametrize(
    "data",
    [
        PILImage.fromarray((np.arange(H * W).reshape(H, W) % 4096).astype(np.uint16)),  # I;16 PNG-like
        (np.arange(H * W).reshape(H, W) / (H * W)).astype(np.float32),
        torch.arange(H * W, dtype=torch.float32).reshape(1, H, W) / (H * W),
        PILImage.fromarray(np.zeros((H, W), dtype=np.uint8), mode="L"),
    ],
    ids=["pil-uint16", "numpy-float", "tensor-1HW", "pil-L"],
)
def test_prepare_xray_frame_writes_8bit_rgb_with_equal_channels(data):
    dp = AngioDatapoint(find_queries=[], images=[Image(data=data, objects=[], size=(0, 0))],
                        view=ViewAngles(10.0, 5.0))
    PrepareXRayFrame()(dp)
    img = dp.images[0]
    assert isinstance(img.data, PILImage.Image) and img.data.mode == "RGB"
    assert img.data.size == (W, H) and img.size == (H, W)
    a = np.asarray(img.data)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()
    assert dp.view == ViewAngles(10.0, 5.0)

    dp2 = Datapoint(find_queries=[], images=[Image(data=data, objects=[], size=(0, 0))])
    PrepareXRayFrame(output="tensor")(dp2)
    t = dp2.images[0].data
    assert t.shape == (3, H, W) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1


def test_clahe_is_off_by_default_and_raises_local_contrast_when_on():
    rng = np.random.default_rng(0)
    frame = (0.45 + 0.1 * rng.random((64, 64))).astype(np.float32)  # a flat, low-contrast frame
    plain = prepare_frame(frame)
    np.testing.assert_allclose(plain, frame)
    eq = prepare_frame(frame, clahe=True, clahe_kernel_size=16)
    assert eq.std() > 2 * plain.std()


# ---------------------------------------------------------------------------------------------- photometric
ALL_ON = dict(p_gamma=1, p_contrast=1, p_brightness=1, p_noise=1, p_blur=1, p_underfill=1)


@pytest.mark.parametrize("image", ["gray", "tensor"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_photometric_changes_pixels_never_masks_boxes_or_angles(image, seed):
    dp = _datapoint([_blob(), _rect(30, 40, 5, 15)], [_query("a", [0, 1], 0)], image=image)
    before_img = np.asarray(dp.images[0].data, dtype=np.float32).copy() if image == "gray" else dp.images[0].data.clone()
    before = _targets_snapshot(dp)
    torch.manual_seed(seed)
    XRayPhotometricAugment(**ALL_ON)(dp)
    _assert_same_targets(before, _targets_snapshot(dp))
    after = dp.images[0].data
    if image == "gray":
        assert isinstance(after, PILImage.Image) and after.mode == "RGB"
        a = np.asarray(after, dtype=np.float32)
        assert np.abs(a - before_img).mean() > 1.0
        assert (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all(), "a gray frame must stay gray"
    else:
        assert after.shape == (3, H, W) and after.dtype == torch.float32
        assert 0 <= after.min() and after.max() <= 1 and torch.isfinite(after).all()
        assert (after - before_img).abs().mean() > 1e-3


def test_photometric_is_reproducible_under_torch_seed():
    outs = []
    for _ in range(2):
        dp = _datapoint([_blob()], [_query("a", [0], 0)])
        torch.manual_seed(123)
        XRayPhotometricAugment(**ALL_ON)(dp)
        outs.append(np.asarray(dp.images[0].data))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_photometric_refuses_a_normalised_frame():
    dp = _datapoint([_blob()], [_query("a", [0], 0)])
    ToTensorAPI()(dp)
    NormalizeAPI(mean=[0.5] * 3, std=[0.5] * 3)(dp)
    with pytest.raises(RuntimeError, match="before NormalizeAPI"):
        XRayPhotometricAugment(**ALL_ON)(dp)


def test_quantum_noise_shrinks_with_dose_as_poisson_statistics_say():
    torch.manual_seed(0)
    x = torch.full((1, 256, 256), 0.5)
    for dose in (100.0, 1000.0):
        std = float((quantum_noise(x, dose, 0.0) - x).std())
        expected = math.sqrt(0.5 * dose) / dose  # std of Poisson(v * dose) / dose
        assert abs(std - expected) / expected < 0.05


def test_underfill_fades_thin_dark_vessels_and_keeps_wide_anatomy():
    x = torch.full((1, 64, 96), 0.7)
    x[:, 30:33, :48] = 0.2  # a thin dark vessel (3 px)
    x[:, 10:40, 60:90] = 0.4  # a wide dark structure (30 px), like a vertebra
    y = underfill(x, 0.4, width=9)
    vessel_before = float(x[0, 20, 20] - x[0, 31, 20])
    vessel_after = float(y[0, 20, 20] - y[0, 31, 20])
    assert 0.3 * vessel_before < vessel_after < 0.6 * vessel_before  # about 0.4 (thin: a little more)
    assert torch.allclose(y[0, 15:35, 65:85], x[0, 15:35, 65:85], atol=1e-4)  # wide structure untouched
    assert torch.allclose(y[0, 50:, :], x[0, 50:, :], atol=1e-4)  # flat background untouched


# ---------------------------------------------------------------------------------------------- geometric
AFFINES = [(0.0, 1.0, (0.0, 0.0)), (7.0, 1.0, (0.0, 0.0)), (-10.0, 1.08, (0.04, -0.03)),
           (3.0, 0.9, (-0.05, 0.05)), (90.0, 1.0, (0.0, 0.0))]


@pytest.mark.parametrize("image", ["gray", "tensor"])
@pytest.mark.parametrize("angle, scale, shift", AFFINES)
def test_affine_box_is_box_of_transformed_mask_and_mask_lands_where_predicted(image, angle, scale, shift):
    blob = _blob()
    dp = _datapoint([blob], [_query("a", [0], 0)], image=image)
    apply_affine(dp, angle, scale, shift)
    _mask_box_consistent(dp)
    out = dp.images[0].objects[0].segment
    assert out.dtype == torch.uint8 and out.shape == (H, W)
    # the mask's centre of mass moves as the affine predicts (pixel centres at i + 0.5)
    def centroid(m):
        ys, xs = torch.nonzero(m, as_tuple=True)
        return torch.stack([xs.double().mean() + 0.5, ys.double().mean() + 0.5])[None]
    pred = _expected_position(centroid(blob), angle, scale, (shift[0] * W, shift[1] * H), (H, W))
    assert torch.allclose(centroid(out), pred, atol=0.75)
    # the image moved with the mask: the dark vessel pixels are where the mask is
    x = np.asarray(dp.images[0].data, dtype=np.float32)[..., 0] / 255 if image == "gray" else dp.images[0].data[0].numpy()
    inside = x[out.numpy() > 0]
    assert np.median(inside) < 0.25, "image pixels under the transformed mask are not the vessel"


def test_identity_affine_keeps_loader_boxes_exactly():
    dp = _datapoint([_blob(), _rect(0, 48, 0, 64)], [_query("a", [0, 1], 0)])
    before = [o.bbox.clone() for o in dp.images[0].objects]
    img_before = np.asarray(dp.images[0].data).copy()
    apply_affine(dp, 0.0, 1.0, (0.0, 0.0))
    for b, o in zip(before, dp.images[0].objects):
        assert torch.equal(b, o.bbox)
    np.testing.assert_array_equal(img_before, np.asarray(dp.images[0].data))


def test_integer_translation_shifts_masks_and_boxes_exactly():
    dp = _datapoint([_rect(10, 20, 30, 40)], [_query("a", [0], 0)])
    apply_affine(dp, 0.0, 1.0, (5 / W, -3 / H))
    assert torch.equal(dp.images[0].objects[0].segment, _rect(7, 17, 35, 45))
    assert torch.equal(dp.images[0].objects[0].bbox, torch.tensor([35.0, 7.0, 45.0, 17.0]))


def test_box_only_object_gets_enclosing_box_of_corners_clipped_to_frame():
    dp = _datapoint([None], [_query("a", [0], 0)])  # box (20, 10, 30, 18), no mask
    apply_affine(dp, 90.0, 1.0, (0.0, 0.0))
    # about the centre (32, 24), a 90 degree turn maps x -> 32 + (y - 24), y -> 24 - (x - 32)
    assert torch.allclose(dp.images[0].objects[0].bbox, torch.tensor([18.0, 26.0, 26.0, 36.0]), atol=1e-5)
    boxes = map_boxes(torch.tensor([[50.0, 40.0, 64.0, 48.0]]), (H, W), affine_args(0.0, 1.0, (10.0, 5.0)))
    assert torch.equal(boxes, torch.tensor([[60.0, 45.0, 64.0, 48.0]]))


def test_affine_moves_point_and_box_prompts_with_the_masks():
    # a 90 degree turn about (32, 24) maps pixel centres onto pixel centres: index (x, y) -> (y + 8, 55 - x)
    m = _rect(10, 11, 20, 21)  # one pixel at x=20, y=10
    dp = _datapoint([m], [_query("a", [0], 0)])
    q = dp.find_queries[0]
    q.input_points = torch.tensor([[[20.0, 10.0, 1.0]]])  # (1, N, x/y/label), pixel indices as SAM3 holds them
    q.input_bbox = box_from_mask(m)[None].clone()
    q.semantic_target = m.clone()
    apply_affine(dp, 90.0, 1.0, (0.0, 0.0))
    seg = dp.images[0].objects[0].segment
    assert torch.nonzero(seg).tolist() == [[35, 18]]  # (row, col) = (55 - 20, 10 + 8)
    assert torch.allclose(q.input_points, torch.tensor([[[18.0, 35.0, 1.0]]]), atol=1e-4)
    assert torch.allclose(q.input_bbox.view(4), box_from_mask(seg), atol=1e-4)
    assert torch.equal(q.semantic_target, seg)


def test_affine_keeps_view_angles_and_known_flag():
    dp = _datapoint([_blob()], [_query("a", [0], 0)], angles=(-30.0, 25.0))
    RandomAffineWithTargets(p=1.0)(dp)
    assert dp.view == ViewAngles(-30.0, 25.0)


def test_affine_needs_decoded_masks_and_says_where_to_put_decode_rle():
    dp = _datapoint([_blob()], [_query("a", [0], 0)])
    dp.images[0].objects[0].segment = {"size": [H, W], "counts": b"0"}
    with pytest.raises(TypeError, match="DecodeRle"):
        RandomAffineWithTargets(p=1.0)(dp)


def test_object_pushed_out_of_frame_is_dropped_queries_reindexed_no_nan():
    reset_dropped_object_counts()
    left = _rect(10, 20, 0, 6)  # hugs the left border
    middle = _blob()
    right = _rect(30, 40, 56, 64)
    # query "left" has only the left object; query "both" has left + right; "mid" the middle one
    queries = [_query("left", [0], 0), _query("both", [0, 2], 0), _query("mid", [1], 1)]
    dp = _datapoint([left, middle, right], queries)
    apply_affine(dp, 0.0, 1.0, (-8 / W, 0.0))  # shift 8 px left: `left` leaves the frame
    objs = dp.images[0].objects
    assert len(objs) == 2
    assert [o.object_id for o in objs] == [1, 2]  # same objects, new indices 0 and 1
    by_text = {q.query_text: q for q in dp.find_queries}
    assert by_text["left"].object_ids_output == []  # negative query now
    assert by_text["left"].inference_metadata.object_id == -1
    assert by_text["both"].object_ids_output == [1]  # the right object, reindexed 2 -> 1
    assert by_text["mid"].object_ids_output == [0]
    assert torch.equal(objs[1].segment, _rect(30, 40, 48, 56))
    _mask_box_consistent(dp)
    assert dropped_object_counts() == {"RandomAffineWithTargets": 1}

    ToTensorAPI()(dp)
    NormalizeAPI(mean=[0.5] * 3, std=[0.5] * 3)(dp)
    batch = collate_fn_api([dp], dict_key="all", with_seg_masks=True)["all"]
    tgt = batch.find_targets[0]
    assert tgt.num_boxes.tolist() == [0, 1, 1]
    assert torch.isfinite(tgt.boxes).all() and torch.isfinite(tgt.boxes_padded).all()
    assert tgt.segments.shape == (2, H, W) and torch.isfinite(batch.img_batch).all()


def test_every_object_pushed_out_leaves_a_valid_all_negative_sample():
    dp = _datapoint([_blob(), _rect(30, 40, 5, 15)], [_query("a", [0], 0), _query("b", [1], 1)])
    apply_affine(dp, 0.0, 1.0, (1.0, 0.0))  # everything moves out to the right
    assert dp.images[0].objects == [] and all(q.object_ids_output == [] for q in dp.find_queries)
    ToTensorAPI()(dp)
    NormalizeAPI(mean=[0.5] * 3, std=[0.5] * 3)(dp)
    tgt = collate_fn_api([dp], dict_key="all", with_seg_masks=True)["all"].find_targets[0]
    assert tgt.num_boxes.tolist() == [0, 0] and tgt.boxes.numel() == 0


def test_random_affine_never_empties_a_sample_it_leaves_it_untransformed_instead():
    """An all-negative batch collates to masks of shape (0,), which SAM3's SemanticSegCriterion cannot
    interpolate; so a draw that would drop every object is redrawn, and finally skipped."""
    dp = _datapoint([_blob()], [_query("a", [0], 0)])
    before = copy.deepcopy(dp)
    aug = RandomAffineWithTargets(p=1.0, min_visible_pixels=10**6, max_tries=3)  # every draw drops all
    aug(dp)
    assert aug.num_skipped == 1
    assert dp.images[0].objects[0].object_id == 0 and dp.find_queries[0].object_ids_output == [0]
    assert torch.equal(dp.images[0].objects[0].segment, before.images[0].objects[0].segment)
    np.testing.assert_array_equal(np.asarray(dp.images[0].data), np.asarray(before.images[0].data))


# ---------------------------------------------------------------------------------------------- flips
@pytest.mark.parametrize("image", ["gray", "tensor"])
@pytest.mark.parametrize("horizontal, vertical", [(True, False), (False, True), (True, True)])
def test_flip_maps_masks_and_boxes_consistently_and_twice_is_identity(image, horizontal, vertical):
    dp = _datapoint([_blob(), None], [_query("a", [0, 1], 0)], image=image)
    before = copy.deepcopy(dp)
    apply_flip(dp, horizontal, vertical, view_angle_rule="mirror")
    _mask_box_consistent(dp)
    seg = dp.images[0].objects[0].segment
    expected = torch.flip(_blob(), ([-1] if horizontal else []) + ([-2] if vertical else []))
    assert torch.equal(seg, expected)
    x0, y0, x1, y1 = 20.0, 10.0, 30.0, 18.0  # the box-only object
    if horizontal:
        x0, x1 = W - x1, W - x0
    if vertical:
        y0, y1 = H - y1, H - y0
    assert torch.equal(dp.images[0].objects[1].bbox, torch.tensor([x0, y0, x1, y1]))
    apply_flip(dp, horizontal, vertical, view_angle_rule="mirror")
    apply_flip(before, False, False)
    for a, b in zip(dp.images[0].objects, before.images[0].objects):
        assert torch.equal(a.bbox, b.bbox)
    if image == "gray":
        np.testing.assert_array_equal(np.asarray(dp.images[0].data), np.asarray(before.images[0].data))
    else:
        assert torch.equal(dp.images[0].data, before.images[0].data)
    assert dp.view == before.view  # mirror twice = the original view


def test_flip_marks_view_angles_unknown_by_default():
    dp = _datapoint([_blob()], [_query("a", [0], 0)], angles=(30.0, -20.0))
    RandomFlipWithViewAngles(p_horizontal=1.0)(dp)
    assert dp.view is None
    dp = _datapoint([_blob()], [_query("a", [0], 0)])
    RandomFlipWithViewAngles(p_horizontal=0.0, p_vertical=0.0)(dp)  # no flip drawn: nothing changes
    assert dp.view is not None


@pytest.mark.parametrize(
    "horizontal, vertical, expected",
    [(True, False, (-30.0, -20.0)), (False, True, (30.0, 20.0)), (True, True, (-30.0, 20.0))],
)
def test_flip_mirror_rule_negates_the_flipped_axis_angle(horizontal, vertical, expected):
    dp = _datapoint([_blob()], [_query("a", [0], 0)], angles=(30.0, -20.0))
    apply_flip(dp, horizontal, vertical, view_angle_rule="mirror")
    assert dp.view == ViewAngles(*expected)


def _c_arm_projection(points: np.ndarray, primary: float, secondary: float) -> np.ndarray:
    """Parallel projection of patient-frame points (x: patient left, y: head, z: anterior) for a C-arm
    rotated by ``primary`` about the head-foot axis (LAO+) and ``secondary`` about the left-right axis
    (CRA+); image u along the patient's left, v towards the head at (0, 0)."""
    p, s = math.radians(primary), math.radians(secondary)
    r_primary = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    r_secondary = np.array([[1, 0, 0], [0, math.cos(s), -math.sin(s)], [0, math.sin(s), math.cos(s)]])
    cam = points @ (r_primary @ r_secondary)  # patient -> detector coordinates (rows: R^T x)
    return cam[:, :2]


def test_mirror_rule_is_the_exact_geometry_of_a_mirrored_heart():
    """hflip(view of heart at (p, s)) == view of the left-right mirrored heart at (-p, s); vflip: (p, -s)."""
    rng = np.random.default_rng(0)
    heart = rng.normal(size=(50, 3))
    p, s = 35.0, -20.0
    img = _c_arm_projection(heart, p, s)
    mirror_lr = heart * np.array([-1, 1, 1])
    mirror_hf = heart * np.array([1, -1, 1])
    np.testing.assert_allclose(img * [-1, 1], _c_arm_projection(mirror_lr, -p, s), atol=1e-12)
    np.testing.assert_allclose(img * [1, -1], _c_arm_projection(mirror_hf, p, -s), atol=1e-12)
    # ... and the mirrored frame is not the real RAO view of the same heart
    assert not np.allclose(img * [-1, 1], _c_arm_projection(heart, -p, s), atol=1e-3)
