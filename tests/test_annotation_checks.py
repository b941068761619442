"""Bad data files get a clear error: malformed annotations never reach pycocotools (a ValueError
naming the file, the annotation and the field, from every reader and from synth's object
sources), masks must match their images, truncated JPEGs are refused, and the torch requirement
excludes versions whose safe loading can be bypassed."""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from packaging.specifiers import SpecifierSet

from amodal_sam.data.masks import compressed_rle_counts, decode_segmentation, encode_rle
from amodal_sam.data.objects import load_objects
from amodal_sam.data.readers import load_dataset
from amodal_sam.image_io import jpeg_is_complete, read_rgb, write_mask, write_rgb

from conftest import random_image

H, W = 40, 60
SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]


def _cocoa_cls(tmp_path, segmentation=None, visible=None, **annotation):
    write_rgb(tmp_path / "a.png", random_image(H, W))
    entry = {
        "id": 9,
        "image_id": 1,
        "segmentation": [SQUARE] if segmentation is None else segmentation,
        "visible_mask": [SQUARE] if visible is None else visible,
        **annotation,
    }
    path = tmp_path / "ann.json"
    path.write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}], "annotations": [entry]})
    )
    return path


BAD_POLYGONS = [
    ([10, 10, 30, 10, 30, float("nan")], "has a non-finite"),
    ([10, 10, 30, 10, 30, float("inf")], "has a non-finite"),
    ([10, 10, 30, 10, 30, 30, 10], "needs an even count of at least 6.*got 7"),
    ([10, 10, 30, 10], "needs an even count of at least 6.*got 4"),
    ([10, 10, 1e9, 10, 30, 30], r"x from 10 to 1e\+09 lies far outside the image's width 60"),
    ([10, -1e9, 30, 10, 30, 30], "y from -1e.09 to 30 lies far outside the image's height 40"),
    ([10, 10, "30", 10, 30, 30], "must be a list of numbers"),
    ([10, 10, True, 10, 30, 30], "must be a list of numbers"),
]


@pytest.mark.parametrize("polygon, message", BAD_POLYGONS)
def test_bad_polygons_name_file_annotation_and_field(tmp_path, polygon, message):
    # json writes NaN / Infinity literals, which json (and so the readers) read back
    path = _cocoa_cls(tmp_path, visible=[polygon])
    dataset = load_dataset(path)
    with pytest.raises(ValueError, match=rf"ann.json' annotation 9 field 'visible_mask' polygon 0: {message}"):
        dataset[0]


def test_a_polygon_may_leave_the_image_a_little():
    # a square reaching 10 px past the right side is clipped, not refused
    mask = decode_segmentation([50, 10, 70, 10, 70, 30, 50, 30], H, W)
    assert mask[10:30, 50:60].all() and mask.sum() == 200


def _rle(mask):
    return encode_rle(mask)


def test_rle_counts_must_cover_the_image_exactly(tmp_path):
    square = decode_segmentation(SQUARE, H, W)
    good = np.asfortranarray(square)
    # uncompressed counts: column-major runs; drop the last run so they fall short of H x W
    flat = good.ravel(order="F").astype(int)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    assert sum(runs) == H * W and flat[0] == 0  # the first run counts zeros, as COCO's does
    short = {"size": [H, W], "counts": runs[:-1]}
    dataset = load_dataset(_cocoa_cls(tmp_path, segmentation=short))
    with pytest.raises(
        ValueError, match=rf"field 'segmentation': RLE counts add up to {H * W - runs[-1]} pixels.*{H} x {W}"
    ):
        dataset[0]
    np.testing.assert_array_equal(decode_segmentation({"size": [H, W], "counts": runs}, H, W), square)
    with pytest.raises(ValueError, match="non-negative integers"):
        decode_segmentation({"size": [H, W], "counts": [-5, *runs[1:], 5]}, H, W)


def test_compressed_rle_is_checked_too():
    square = decode_segmentation(SQUARE, H, W)
    counts = _rle(square)["counts"]
    assert sum(compressed_rle_counts(counts)) == H * W
    # the runs of the square, column by column: 10 columns empty + 10 rows above the square,
    # then 20 object pixels and 20 background pixels per column, ...
    assert compressed_rle_counts(counts)[:3] == [10 * H + 10, 20, 20]
    truncated = _rle(square[:, :30])["counts"]  # the runs of half the image only
    with pytest.raises(ValueError, match=rf"where: RLE counts add up to {H * 30} pixels"):
        decode_segmentation({"size": [H, W], "counts": truncated}, H, W, where="where")
    with pytest.raises(ValueError, match="not a compressed RLE character"):
        decode_segmentation({"size": [H, W], "counts": counts + " "}, H, W)
    with pytest.raises(ValueError, match="ends inside a number"):
        decode_segmentation({"size": [H, W], "counts": counts + "o"}, H, W)  # 'o': continuation bit set


def test_rle_size_must_be_the_images():
    with pytest.raises(ValueError, match=r"RLE size \[40, 61\] differs from the image size \[40, 60\]"):
        decode_segmentation({"size": [H, W + 1], "counts": [H * (W + 1)]}, H, W)


def test_missing_keys_are_named(tmp_path):
    path = _cocoa_cls(tmp_path)
    content = json.loads(path.read_text())
    content["annotations"].append({"id": 4, "image_id": 1, "segmentation": [SQUARE]})
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="ann.json': annotation 4 has no 'visible_mask'"):
        load_dataset(path)
    del content["images"][0]["file_name"]
    content["annotations"].pop()
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="ann.json': image 1 has no 'file_name'"):
        load_dataset(path)
    path.write_text(json.dumps({"images": [], "annotations": [["not", "an", "object"]]}))
    with pytest.raises(ValueError, match="'annotations' must be a list of JSON objects"):
        load_dataset(path)


def test_cocoa_region_without_segmentation_is_named(tmp_path):
    write_rgb(tmp_path / "a.png", random_image(H, W))
    (tmp_path / "a.json").write_text(json.dumps({"image_id": 5, "regions": [{"name": "box", "order": 1}]}))
    with pytest.raises(ValueError, match="a.json': record 5 region 0 has no 'segmentation'"):
        load_dataset(tmp_path / "a.json")


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.1 0.1 0.5 0.1 nan 0.5", "line 2: has a non-finite coordinate"),
        ("0 0.1 0.1 0.5 0.1 0.5", "line 2: needs an even count of at least 6 coordinates.*got 5"),
        ("0 0.1 0.1 0.5 0.1", "line 2: needs an even count"),
        ("0 0.1 0.1 50 0.1 0.5 0.5", r"line 2: YOLO coordinates are fractions of the image in \[0, 1\]; got 0.1 to 50"),
        ("cat 0.1 0.1 0.5 0.1 0.5 0.5", "line 2: expected 'class x1 y1"),
    ],
)
def test_bad_yolo_lines_are_named(tmp_path, line, message):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    write_rgb(tmp_path / "images" / "a.jpg", random_image(H, W))
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n" + line + "\n")
    with pytest.raises(ValueError, match=f"a.txt' {message}"):
        load_objects(tmp_path, min_area=1)


def test_coco_sources_of_synth_are_checked(tmp_path):
    write_rgb(tmp_path / "a.png", random_image(H, W))
    annotation = {"id": 2, "image_id": 1, "segmentation": [[10, 10, 30, 10, 30]]}
    (tmp_path / "inst.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}], "annotations": [annotation]})
    )
    with pytest.raises(ValueError, match="inst.json' annotation 2 field 'segmentation' polygon 0: needs an even count"):
        load_objects(tmp_path / "inst.json", min_area=1)


def test_a_pair_mask_of_another_size_than_its_image_is_refused(tmp_path):
    write_rgb(tmp_path / "seq" / "00000.jpg", random_image(H, W))
    write_mask(tmp_path / "seq" / "00000.png", np.ones((H, W + 2), bool))
    with pytest.raises(ValueError, match=r"00000.png' is \(40, 62\) \(H, W\) but its image .*00000.jpg' is \(40, 60\)"):
        load_objects(tmp_path, min_area=1)


def test_a_truncated_jpeg_is_refused_and_a_complete_one_with_a_trailer_is_read(tmp_path):
    write_rgb(tmp_path / "whole.jpg", random_image(H, W))
    data = (tmp_path / "whole.jpg").read_bytes()
    assert jpeg_is_complete(data) and not jpeg_is_complete(data[:-2]) and not jpeg_is_complete(data[: len(data) // 2])
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # OpenCV alone would decode it, grey-filled
    with pytest.raises(ValueError, match="cut.jpg' is a truncated JPEG"):
        read_rgb(tmp_path / "cut.jpg")
    (tmp_path / "trailer.jpg").write_bytes(data + b"camera trailer bytes")
    np.testing.assert_array_equal(read_rgb(tmp_path / "trailer.jpg"), read_rgb(tmp_path / "whole.jpg"))
    # a progressive JPEG (several scans) is walked scan by scan
    ok, progressive = cv2.imencode(".jpg", random_image(H, W), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and jpeg_is_complete(progressive.tobytes()) and not jpeg_is_complete(progressive.tobytes()[:-40])


SOI, EOI, SOS = "ffd8", "ffd9", "ffda0002"  # start and end of image; a start of scan with no header bytes


@pytest.mark.parametrize(
    "hexes, complete",
    [
        (SOI + EOI, True),  # nothing between
        (SOI + EOI + "00", True),  # a trailer byte after the end
        (SOI + "ffe00004aabb" + EOI, True),  # a segment of length 4 (its two length bytes and two more)
        (SOI + "ffe00004aabb", False),  # cut right after a whole segment
        (SOI + "ffe0" + "0102" + "00" * 256 + EOI, True),  # a big-endian length of 258
        (SOI + "ffe00004ffd9", False),  # an end marker inside a segment's bytes is no end
        (SOI + "ff" + EOI, True),  # a fill byte before a marker, even the last one
        (SOI + "ffe000", False),  # cut inside a segment's length
        (SOI + "ff01" + EOI, True),  # a marker without a length (TEM)
        (SOI + "00000000", False),  # no marker where one must be
        (SOI + SOS + "12ff0034ffd056ffd778" + EOI, True),  # scan data with stuffing and restart markers
        (SOI + SOS + "12ff0034", False),  # cut inside the scan data
        (SOI + SOS + "1234ff", False),  # cut after a 0xFF that starts nothing
        (SOI + SOS + "11" + "ffc40004ffd9", False),  # after the scan, a segment whose bytes hold an end marker
    ],
)
def test_a_jpeg_is_complete_when_its_markers_reach_the_end_of_image(hexes, complete):
    assert jpeg_is_complete(bytes.fromhex(hexes)) is complete


def test_torch_versions_with_the_weights_only_bypass_are_not_admitted():
    # CVE-2025-32434: torch.load(weights_only=True) could run code up to torch 2.5.1
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    (requirement,) = re.findall(r'"(torch[<>=!~][^"]*)"', text)
    allowed = SpecifierSet(requirement.removeprefix("torch"))
    assert "2.5.1" not in allowed and "2.6.0" in allowed


def test_segmentation_forms_that_are_accepted():
    square = decode_segmentation(SQUARE, H, W)
    rle = _rle(square)
    # an RLE written as a Python-literal string (some COCOA exports), and with bytes counts (pycocotools')
    np.testing.assert_array_equal(decode_segmentation(str(rle), H, W), square)
    np.testing.assert_array_equal(decode_segmentation({**rle, "counts": rle["counts"].encode()}, H, W), square)
    empty = decode_segmentation([], H, W)  # no polygon: an empty mask of the image's size
    assert empty.shape == (H, W) and empty.dtype == bool and not empty.any()
    # a mask that starts with an object pixel: its first run (of background) has length 0
    corner = np.zeros((H, W), bool)
    corner[0, 0] = True
    runs = [0, 1, H * W - 1]
    np.testing.assert_array_equal(decode_segmentation({"size": [H, W], "counts": runs}, H, W), corner)


@pytest.mark.parametrize(
    "polygon, accepted",
    [
        ([-W, 0, 10, 0, 10, 10], True),  # x exactly one image width to the left
        ([2 * W, 0, 10, 0, 10, 10], True),  # x exactly one image width to the right
        ([-W - 1, 0, 10, 0, 10, 10], False),
        ([2 * W + 1, 0, 10, 0, 10, 10], False),
        ([0, -H, 10, 0, 10, 10], True),
        ([0, 2 * H, 10, 0, 10, 10], True),
        ([0, -H - 1, 10, 0, 10, 10], False),
        ([0, 10, 10, 0, 10, 2 * H + 1], False),  # the third point's y: every y is checked
    ],
)
def test_polygon_bounds_are_one_image_size_around_the_image(polygon, accepted):
    if accepted:
        assert decode_segmentation(polygon, H, W).shape == (H, W)
    else:
        with pytest.raises(ValueError, match="lies far outside the image"):
            decode_segmentation(polygon, H, W)


def test_malformed_rle_fields_are_named():
    counts = _rle(decode_segmentation(SQUARE, H, W))["counts"]
    with pytest.raises(ValueError, match=r"an RLE must have 'counts' and 'size'; got keys \['counts'\]"):
        decode_segmentation({"counts": counts}, H, W)
    with pytest.raises(ValueError, match=r"RLE size \['40', '60'\] differs from the image size"):
        decode_segmentation({"size": ["40", "60"], "counts": counts}, H, W)
    with pytest.raises(ValueError, match="here: 'p' is not a compressed RLE character"):
        decode_segmentation({"size": [H, W], "counts": "p" + counts}, H, W, where="here")  # 'p' - '0' = 64


@pytest.mark.parametrize("rate", ["high", 1.5, -0.1, [0.2]])
def test_a_bad_occlusion_rate_is_named(tmp_path, rate):
    path = _cocoa_cls(tmp_path, occlude_rate=rate)
    with pytest.raises(
        ValueError, match=r"ann.json': annotation 9 has 'occlude_rate' .*; expected a number in \[0, 1\]"
    ):
        load_dataset(path)
    assert load_dataset(_cocoa_cls(tmp_path, occlude_rate=0.25))[0].occlusion_rate == 0.25
