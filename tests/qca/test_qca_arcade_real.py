"""QCA on a real angiogram: one ARCADE frame is in both validation splits (syntax_val 4.png and
stenosis_val 58.png, the same pixels up to re-encoding), so the stenoses the ARCADE annotators drew can
be compared with what QCA reports on the mid LAD segment mask the SYNTAX annotators drew. Both stenoses
lie in that segment; QCA must find each as a lesion (its MLD point inside or next to the stenosis
polygon) with a significant % diameter stenosis. Data: Popov et al., Scientific Data 11 (2024)."""

from __future__ import annotations

import numpy as np

from conftest import ARCADE

SYNTAX, STENOSIS = ARCADE / "syntax_val", ARCADE / "stenosis_val"


def _masks(split, file_name):
    """(category name, mask) of every annotation of ``file_name``, read by the project's COCO reader."""
    from PIL import Image

    from sam3_angio.qca.sources import iter_coco

    out = [(it.meta["category_name"], it.mask) for it in iter_coco(split / "annotations.json")
           if it.meta.get("frame") == file_name]
    pixels = np.asarray(Image.open(split / "images" / file_name).convert("L"), np.float32)
    return out, pixels


def test_qca_finds_both_annotated_stenoses_of_a_real_mid_lad():
    from scipy import ndimage

    from sam3_angio.qca import measure_mask

    segments, frame_a = _masks(SYNTAX, "4.png")
    stenoses, frame_b = _masks(STENOSIS, "58.png")
    assert np.abs(frame_a - frame_b).mean() < 5, "the two splits' files are no longer the same frame"
    stenoses = [m for name, m in stenoses if name == "stenosis"]
    mid_lad = next(m for name, m in segments if name == "7")  # SYNTAX 7 = mid LAD
    assert len(stenoses) == 2 and all((m & mid_lad).sum() > 0.3 * m.sum() for m in stenoses)

    q = measure_mask(mid_lad, source="arcade syntax_val 4.png#7")
    assert 2 <= len(q.lesions) <= 3
    for st in stenoses:
        # distance of every pixel to the stenosis polygon; a lesion's MLD must lie within a lumen radius
        dist = ndimage.distance_transform_edt(~st)
        near = [le for le in q.lesions
                if dist[int(round(le.mld_xy[1])), int(round(le.mld_xy[0]))] <= 0.5 * le.reference_diameter]
        assert near, [(le.mld_xy, le.percent_diameter_stenosis) for le in q.lesions]
        assert max(le.percent_diameter_stenosis for le in near) >= 50


def test_the_figure_draws_the_annotated_stenoses_over_the_lesions(tmp_path):
    from PIL import Image

    from sam3_angio.qca import measure_mask
    from sam3_angio.qca.figures import segment_figure

    segments, frame = _masks(SYNTAX, "4.png")
    stenoses, _ = _masks(STENOSIS, "58.png")
    mid_lad = next(m for name, m in segments if name == "7")
    q = measure_mask(mid_lad)
    plain = segment_figure(q, tmp_path / "plain.png", image=frame / 255)
    drawn = segment_figure(q, tmp_path / "outlined.png", image=frame / 255,
                           outlines=[(m, "stenosis") for _, m in stenoses])
    a, b = (np.asarray(Image.open(p).convert("RGB"), np.int16) for p in (plain, drawn))
    assert a.shape == b.shape  # the crop and layout stay; the outlines add magenta pixels to the crop
    magenta = lambda im: ((im[..., 0] > 200) & (im[..., 1] < 120) & (im[..., 2] > 200)).sum()  # noqa: E731
    assert magenta(b) > magenta(a) + 50
