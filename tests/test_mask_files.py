"""Masks read as people save them (amodal_sam.mask_files): JPEG noise, alpha cut-outs, palette void,
index maps, mixed and untidy folders; and the pixel limit, checked from a file's header."""

import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from amodal_sam.image_io import read_rgb, write_mask
from amodal_sam.mask_files import mask_folder_files, read_index_map, read_mask
from amodal_sam.pixel_limit import DEFAULT_MAX_PIXELS, ENVIRONMENT_VARIABLE, max_pixels
from amodal_sam.scene_files import read_scene_masks

H, W = 120, 160


def _disc(center=(60, 80), radius=40) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    return (ys - center[0]) ** 2 + (xs - center[1]) ** 2 <= radius**2


def _palette_png(path, indices: np.ndarray) -> None:
    picture = Image.fromarray(indices.astype(np.uint8), mode="P")
    picture.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192])  # 255: VOC's void colour
    picture.save(path)


def test_a_jpeg_mask_is_read_at_half_brightness_with_a_warning(tmp_path):
    disc = _disc()
    cv2.imwrite(str(tmp_path / "disc.jpg"), disc.astype(np.uint8) * 255, [cv2.IMWRITE_JPEG_QUALITY, 75])
    noisy = cv2.imread(str(tmp_path / "disc.jpg"), cv2.IMREAD_GRAYSCALE) > 0
    assert noisy.sum() > disc.sum() + 100  # the trap: any non-zero pixel counts JPEG noise as object
    with pytest.warns(UserWarning, match=r"mask file .*disc\.jpg' is lossy \(\.jpg\): read as pixels at least half"):
        mask = read_mask(tmp_path / "disc.jpg")
    assert (mask != disc).sum() <= 0.01 * disc.sum()


def test_a_lossy_mask_at_exactly_half_brightness_is_the_object(tmp_path):
    flat = np.full((16, 16), 128, np.uint8)  # a flat JPEG block decodes to its value exactly
    flat[:, 8:] = 127
    cv2.imwrite(str(tmp_path / "half.jpg"), flat, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert (cv2.imread(str(tmp_path / "half.jpg"), cv2.IMREAD_GRAYSCALE)[:, :6] == 128).all()
    with pytest.warns(UserWarning, match="lossy"):
        mask = read_mask(tmp_path / "half.jpg")
    assert mask[:, :6].all() and not mask[:, 10:].any()


def test_a_png_mask_is_read_without_a_warning_and_any_nonzero_pixel_counts(tmp_path):
    faint = _disc().astype(np.uint8)  # value 1: lossless, so 1 is the object
    cv2.imwrite(str(tmp_path / "faint.png"), faint)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_mask(tmp_path / "faint.png"), _disc())


def test_an_rgba_cut_out_is_its_alpha_channel_at_half_opacity(tmp_path):
    disc = _disc()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(1, 256, (H, W, 3))  # the photo's colours everywhere
    rgba[..., 3] = np.where(disc, 255, 0)
    rgba[0, 0, 3] = 127  # just under half opaque: not the object
    rgba[60, 80, 3] = 128  # half opaque, inside: the object
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cut.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "cut.png"), disc)


def test_an_opaque_rgba_mask_is_read_by_its_colours(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[_disc(), 2] = 200  # blue object (the last colour channel), black background, alpha constant
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "opaque.png"), _disc())


def test_a_grey_cut_out_with_alpha_is_its_alpha_and_an_opaque_one_its_grey(tmp_path):
    grey_alpha = np.zeros((H, W, 2), np.uint8)
    grey_alpha[..., 0] = 90  # the photo's grey everywhere
    grey_alpha[..., 1] = np.where(_disc(), 255, 0)
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "cut.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "cut.png"), _disc())
    grey_alpha[..., 0] = np.where(_disc(), 255, 0)
    grey_alpha[..., 1] = 255
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "opaque.png"), _disc())


def test_palette_void_is_neither_object_nor_an_index(tmp_path):
    disc = _disc()
    border = _disc(radius=44) & ~disc
    indices = np.where(disc, 1, 0)
    indices[border] = 255
    indices[:10, :10] = 2
    _palette_png(tmp_path / "davis.png", indices)
    np.testing.assert_array_equal(read_mask(tmp_path / "davis.png"), disc | (indices == 2))
    index_map = read_index_map(tmp_path / "davis.png")
    assert set(np.unique(index_map)) == {0, 1, 2}
    read = read_scene_masks(tmp_path / "davis.png", (H, W))
    assert read.names == [1, 2]
    np.testing.assert_array_equal(read.masks[0], disc)


def test_a_grey_index_map_keeps_255_as_an_object(tmp_path):
    indices = np.zeros((H, W), np.uint8)
    indices[_disc()] = 255  # a plain 0 / 255 mask given as an index map: one object, not void
    cv2.imwrite(str(tmp_path / "grey.png"), indices)
    assert read_scene_masks(tmp_path / "grey.png", (H, W)).names == [255]


def test_an_index_map_saved_as_jpeg_is_refused(tmp_path):
    indices = np.where(_disc(), 1, 0).astype(np.uint8)
    indices[:, 120:] = 2
    cv2.imwrite(str(tmp_path / "index.jpg"), indices)
    with pytest.raises(ValueError, match=r"--masks .*index\.jpg' is lossy .*save the index map as PNG"):
        read_scene_masks(tmp_path / "index.jpg", (H, W))


def test_a_folder_reads_every_mask_format_skips_hidden_files_and_names_other_files(tmp_path):
    folder = tmp_path / "masks"
    write_mask(folder / "a.png", _disc())
    left = np.zeros((H, W), bool)
    left[10:50, 5:40] = True
    cv2.imwrite(str(folder / "b.jpg"), left.astype(np.uint8) * 255)
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS metadata, not an image
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / "sub").mkdir()
    assert [p.name for p in mask_folder_files(folder)] == ["a.png", "b.jpg"]
    with pytest.warns(UserWarning, match="b.jpg"):
        read = read_scene_masks(folder, (H, W))
    assert read.names == ["a.png", "b.jpg"]
    np.testing.assert_array_equal(read.masks[1], left)
    (folder / "c.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="b.jpg"), pytest.raises(ValueError, match=r"^--masks file '.*c\.png' is not"):
        read_scene_masks(folder, (H, W))  # b.jpg is read (and warned about) before c.png
    (folder / "c.png").unlink()
    (folder / "notes.txt").write_text("the masks of photo 3")
    with pytest.raises(ValueError, match=r"--masks folder .* holds files that are not masks: notes\.txt"):
        read_scene_masks(folder, (H, W))


def test_undecodable_files_name_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ValueError, match=r"--visible .*broken\.png' is not a readable image"):
        read_mask(tmp_path / "broken.png", "--visible")
    with pytest.raises(ValueError, match=r"mask file .*absent\.png' does not exist"):
        read_mask(tmp_path / "absent.png")


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` 8-bit grey pixels, with one tiny IDAT:
    any decoder that trusts the header allocates the whole image before it finds the data short."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_header_above_the_pixel_limit_is_refused_before_decoding(tmp_path):
    _png_header_only(tmp_path / "huge.png", 40000, 30000)  # 1200 MP claimed in a 100-byte file
    with pytest.raises(
        ValueError, match=r"image file .*huge\.png' is 40000 x 30000 pixels \(1200 MP\), above the 100 MP"
    ):
        read_rgb(tmp_path / "huge.png")
    with pytest.raises(ValueError, match=r"mask file .*huge\.png' is 40000 x 30000 pixels .*--max-pixels"):
        read_mask(tmp_path / "huge.png")
    with pytest.raises(ValueError, match=r"--masks .*huge\.png' is 40000 x 30000 pixels"):
        read_scene_masks(tmp_path / "huge.png", (H, W))


def test_the_pixel_limit_follows_the_environment(tmp_path, monkeypatch):
    write_mask(tmp_path / "small.png", _disc())
    assert max_pixels() == DEFAULT_MAX_PIXELS == 100_000_000
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(H * W - 1))
    with pytest.raises(ValueError, match=f"160 x 120 pixels .*above the {(H * W - 1) / 1e6:g} MP limit"):
        read_mask(tmp_path / "small.png")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(H * W))  # exactly the limit is allowed
    assert read_mask(tmp_path / "small.png").sum() == _disc().sum()
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "1")  # the smallest limit there is
    assert max_pixels() == 1
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "lots")
    with pytest.raises(ValueError, match="AMODAL_SAM_MAX_PIXELS must be a positive integer"):
        max_pixels()
