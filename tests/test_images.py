"""Decoding and preprocessing of every kind of input the app receives: sketchpad
composites, uploads in odd modes, phone photos with EXIF rotation, huge files,
blank canvases and files that are not images at all. Pillow and NumPy only."""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from model import images
from model.errors import BadImage, BlankSketch
from model.images import (MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MIN_INK_FRACTION, STORED_MAX_SIDE,
                          augment, decode, preprocess, stored_form)
from model.sketches import dataset, draw
from tests.helpers.common import ROOT

SIZE = 224


def encode(image, format="PNG", **options):
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def png_header_only(width, height):
    """A PNG with a valid IHDR claiming width x height but no pixel data: a few
    dozen bytes, so rejecting it must come from the header, not from decoding."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def ink_mask(array):
    return np.asarray(array).mean(axis=2) < 128


def ink_box(array):
    """(top, bottom, left, right) of the dark pixels, bottom/right exclusive."""
    mask = ink_mask(array)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def square_outline(mode, size=(300, 200), paper=None, ink=None):
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).rectangle((60, 40, 160, 140), outline=ink, width=6)
    return image


def assert_ink_on_white(array):
    """A preprocessed sketch: dark strokes, white paper around them, correct shape."""
    assert array.shape == (SIZE, SIZE, 3) and array.dtype == np.uint8
    assert tuple(array[0, 0]) == (255, 255, 255)
    assert tuple(array[SIZE // 2, SIZE // 2]) == (255, 255, 255)  # inside the outline
    assert ink_mask(array).mean() > 0.02


# -- each input kind ----------------------------------------------------------


def test_rgba_sketchpad_ink_on_transparent_is_flattened_onto_white():
    # A sketchpad layer: black strokes on fully transparent *black* pixels.
    # Dropping alpha instead of compositing would give an all-black canvas.
    layer = square_outline("RGBA", paper=(0, 0, 0, 0), ink=(0, 0, 0, 255))
    array = preprocess(decode(encode(layer)), SIZE)
    assert_ink_on_white(array)


def test_rgba_numpy_composite_from_the_browser_is_flattened_onto_white():
    layer = np.asarray(square_outline("RGBA", paper=(0, 0, 0, 0), ink=(0, 0, 0, 255)))
    assert_ink_on_white(preprocess(layer, SIZE))


def test_semi_transparent_ink_is_still_ink():
    layer = square_outline("RGBA", paper=(0, 0, 0, 0), ink=(0, 0, 0, 200))
    assert_ink_on_white(preprocess(decode(encode(layer)), SIZE))


def test_grayscale_mode_l_is_preprocessed_to_rgb():
    image = decode(encode(square_outline("L", paper=255, ink=0)))
    assert image.mode == "L"
    assert_ink_on_white(preprocess(image, SIZE))


def test_16_bit_grayscale_is_scaled_not_clipped():
    # Ink at 20000 of 65535 is a dark grey (78 of 255). Clipping 16-bit values
    # into 8 bits would turn it, and the paper, into 255: a blank canvas.
    array = np.full((200, 300), 65535, np.uint16)
    array[40:140, 60:66] = array[40:140, 154:160] = 20000
    array[40:46, 60:160] = array[134:140, 60:160] = 20000
    image = decode(encode(Image.fromarray(array)))
    assert image.mode in ("I;16", "I;16B", "I;16L", "I")
    result = preprocess(image, SIZE)
    assert_ink_on_white(result)
    assert result.min() == pytest.approx(round(20000 / 65535 * 255), abs=2)


def test_cmyk_jpeg_is_converted_with_ink_dark_and_paper_white():
    image = square_outline("CMYK", paper=(0, 0, 0, 0), ink=(0, 0, 0, 255))
    decoded = decode(encode(image, "JPEG", quality=95))
    assert decoded.mode == "CMYK"
    assert_ink_on_white(preprocess(decoded, SIZE))


def test_palette_image_with_transparent_black_background_is_flattened_onto_white():
    image = Image.new("P", (300, 200), 0)
    image.putpalette([0, 0, 0, 0, 0, 0] + [255] * (254 * 3))
    ImageDraw.Draw(image).rectangle((60, 40, 160, 140), outline=1, width=6)
    for format in ("PNG", "GIF"):
        decoded = decode(encode(image, format, transparency=0))
        assert decoded.mode == "P"
        assert_ink_on_white(preprocess(decoded, SIZE))


def test_huge_image_is_decoded_preprocessed_and_stored_small():
    image = Image.new("RGB", (6000, 4000), "white")
    ImageDraw.Draw(image).ellipse((1000, 1000, 3000, 3000), outline="black", width=30)
    decoded = decode(encode(image, "JPEG", quality=90))
    assert decoded.size == (6000, 4000)
    assert_ink_on_white(preprocess(decoded, SIZE))
    data, width, height = stored_form(decoded)
    assert (width, height) == (STORED_MAX_SIDE, round(STORED_MAX_SIDE * 4000 / 6000))
    assert Image.open(io.BytesIO(data)).size == (width, height)


def test_png_whose_header_claims_20000_by_20000_is_rejected_before_decoding(monkeypatch):
    data = png_header_only(20000, 20000)
    assert len(data) < 100

    def load(self):
        raise AssertionError("the pixels were decoded before the size was checked")
    # Any decoding goes through ImageFile.load: the refusal must come before it.
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(BadImage, match="pixels"):
        decode(data)


@pytest.mark.parametrize("orientation, expected_corner", [
    # Orientation 6: the camera was turned clockwise; the viewer rotates 90 deg CW,
    # so the stored top-left corner is displayed top-right. 8 is the opposite turn.
    (6, "top-right"),
    (8, "bottom-left"),
])
def test_exif_rotated_jpeg_ends_upright(orientation, expected_corner):
    stored = Image.new("RGB", (300, 150), "white")
    draw_ = ImageDraw.Draw(stored)
    draw_.rectangle((0, 0, 30, 15), fill="black")       # corner marker
    draw_.line((40, 75, 260, 75), fill="black", width=4)  # a wide bar as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert decoded.size == (150, 300)
    mask = np.asarray(decoded.convert("L")) < 128
    corners = {"top-left": mask[:15, :15], "top-right": mask[:15, -15:],
               "bottom-left": mask[-15:, :15], "bottom-right": mask[-15:, -15:]}
    assert {name for name, part in corners.items() if part.mean() > 0.9} == {expected_corner}
    # The bar stored wide is displayed tall; the preprocessed crop keeps that.
    cropped = Image.new("RGB", (300, 150), "white")
    ImageDraw.Draw(cropped).line((40, 75, 260, 75), fill="black", width=4)
    upright = decode(encode(cropped, "JPEG", quality=95, exif=exif.tobytes()))
    top, bottom, left, right = ink_box(preprocess(upright, SIZE))
    assert bottom - top > 5 * (right - left)


@pytest.mark.parametrize("canvas", ["white", "transparent", "near_white_noise", "grey"])
def test_blank_canvas_raises_blank_sketch(canvas):
    if canvas == "white":
        image = Image.new("RGB", (400, 300), "white")
    elif canvas == "transparent":
        image = decode(encode(Image.new("RGBA", (400, 300), (0, 0, 0, 0))))
    elif canvas == "near_white_noise":
        rng = np.random.default_rng(0)
        image = rng.integers(225, 256, size=(300, 400, 3), dtype=np.uint8)
    else:
        image = Image.new("L", (400, 300), 128)
    with pytest.raises(BlankSketch):
        preprocess(image, SIZE)


@pytest.mark.parametrize("kind", ["zero_bytes", "truncated_png", "truncated_jpeg", "text",
                                  "tiff", "html"])
def test_unreadable_files_raise_bad_image(kind):
    png = encode(draw("star", np.random.default_rng(3)))
    jpeg = encode(draw("star", np.random.default_rng(3)), "JPEG")
    data = {
        "zero_bytes": b"",
        "truncated_png": png[:len(png) // 2],
        "truncated_jpeg": jpeg[:len(jpeg) // 2],
        "text": b"circle,square,triangle\n" * 20,
        # A real image in a format the app does not accept.
        "tiff": encode(draw("star", np.random.default_rng(3)), "TIFF"),
        "html": b"<img src=x onerror=alert(1)>",
    }[kind]
    with pytest.raises(BadImage):
        decode(data)


# -- the crop ---------------------------------------------------------------


def test_ink_crop_keeps_aspect_ratio_of_a_wide_line_and_centers_it():
    # Drawn off-centre in the top-left, 200 x 4 pixels.
    image = Image.new("RGB", (600, 400), "white")
    ImageDraw.Draw(image).line((20, 30, 220, 30), fill="black", width=4)
    array = preprocess(image, SIZE)
    top, bottom, left, right = ink_box(array)
    width, height = right - left, bottom - top
    assert width > 20 * height
    # Cropped to the ink plus DEFAULT_MARGIN, the line spans most of the width.
    assert width == pytest.approx(SIZE / (1 + 2 * images.DEFAULT_MARGIN), abs=4)
    assert (top + bottom) / 2 == pytest.approx(SIZE / 2, abs=3)
    assert (left + right) / 2 == pytest.approx(SIZE / 2, abs=3)


def test_ink_at_the_image_edge_is_padded_with_paper_not_black():
    # The margin reaches outside the image; those parts must be paper.
    image = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(image).rectangle((0, 0, 80, 80), outline="black", width=5)
    array = preprocess(image, SIZE)
    assert tuple(array[0, 0]) == (255, 255, 255)
    assert tuple(array[-1, -1]) == (255, 255, 255)


# -- purity and augmentation -----------------------------------------------------


def test_preprocess_is_pure_same_input_same_output_input_untouched():
    sketch = draw("triangle", np.random.default_rng(7))
    before = sketch.tobytes()
    # Coloured ink on transparent white: no channel is 0 or 255 everywhere, so
    # any write into the caller's array shows.
    layer = np.array(square_outline("RGBA", paper=(250, 250, 250, 0), ink=(30, 60, 200, 255)))
    layer_before = layer.copy()
    first, second = preprocess(sketch, SIZE), preprocess(sketch, SIZE)
    assert np.array_equal(first, second)
    assert sketch.tobytes() == before and sketch.mode == "RGB" and sketch.size == (256, 256)
    assert np.array_equal(preprocess(layer, SIZE), preprocess(layer, SIZE))
    assert np.array_equal(layer, layer_before)


def test_preprocess_gives_training_and_serving_the_same_array():
    # Training reads the stored PNG, serving gets the live image: one result.
    sketch = draw("circle", np.random.default_rng(11))
    data, _, _ = stored_form(sketch)
    assert np.array_equal(preprocess(decode(data), SIZE), preprocess(sketch, SIZE))


def test_augment_is_deterministic_in_seed_and_differs_across_seeds():
    array = preprocess(draw("star", np.random.default_rng(5)), SIZE)
    original = array.copy()
    a, b = augment(array, seed=[1, 42]), augment(array, seed=[1, 42])
    assert np.array_equal(a, b)
    others = [augment(array, seed=[view, 42]) for view in (2, 3, 4)]
    assert all(not np.array_equal(a, other) for other in others)
    assert not np.array_equal(a, array)
    assert a.shape == array.shape and a.dtype == np.uint8
    assert np.array_equal(array, original)
    # Still a sketch: ink on paper, not an empty or black square.
    assert 0.005 < ink_mask(a).mean() < 0.5


# -- limits, one test each ---------------------------------------------------------


def test_max_image_bytes_is_the_largest_accepted_file():
    valid = encode(draw("circle", np.random.default_rng(1)))
    # PNG readers stop at IEND, so trailing padding keeps the file valid.
    at_limit = valid + b"\0" * (MAX_IMAGE_BYTES - len(valid))
    assert len(at_limit) == MAX_IMAGE_BYTES
    assert decode(at_limit).size == (256, 256)
    with pytest.raises(BadImage, match="larger than 20 MB"):
        decode(at_limit + b"\0")


def test_preprocess_max_side_bounds_the_work_on_a_long_thin_image(monkeypatch):
    # 250x40000 with ink at both ends: the crop to the ink once padded it to a
    # 48,000-pixel square (GBs of memory for a 42 KB PNG).
    tall = Image.new("RGB", (250, 40000), "white")
    pen = ImageDraw.Draw(tall)
    pen.rectangle((20, 100, 230, 1500), fill="black")
    pen.rectangle((20, 38500, 230, 39900), fill="black")
    made, real_new = [], Image.new
    monkeypatch.setattr(Image, "new", lambda mode, size, *rest, **options: (
        made.append(size), real_new(mode, size, *rest, **options))[1])
    array = preprocess(tall, SIZE)
    assert array.shape == (SIZE, SIZE, 3) and (array < 128).any()
    assert made and max(max(size) for size in made) <= 1.25 * images.PREPROCESS_MAX_SIDE
    # An image within the limit is cropped from its own pixels.
    small = tall.resize((25, images.PREPROCESS_MAX_SIDE))
    assert images._bounded(small) is small


def test_max_image_pixels_is_the_largest_accepted_area():
    # At the limit the header passes and decoding fails for lack of pixel data;
    # one pixel more and the header alone is refused.
    with pytest.raises(BadImage) as at_limit:
        decode(png_header_only(10_000, MAX_IMAGE_PIXELS // 10_000))
    assert "pixels" not in str(at_limit.value)
    with pytest.raises(BadImage, match=f"more than {MAX_IMAGE_PIXELS:,} pixels"):
        decode(png_header_only(1, MAX_IMAGE_PIXELS + 1))


def test_a_strip_longer_than_max_aspect_ratio_is_refused_from_its_header():
    # The 250x40000 PNG cost seconds and gigabytes; refused before decoding.
    with pytest.raises(BadImage, match="at most 20 times the other"):
        decode(png_header_only(250, 40_000))
    with pytest.raises(BadImage) as at_limit:  # the header passes; no pixel data follows
        decode(png_header_only(images.MAX_ASPECT_RATIO * 100, 100))
    assert "times the other" not in str(at_limit.value)


def test_stored_max_side_bounds_stored_images_and_keeps_aspect():
    assert STORED_MAX_SIDE == 512  # as the README promises
    exact = Image.new("RGB", (STORED_MAX_SIDE, 100), "white")
    assert stored_form(exact)[1:] == (STORED_MAX_SIDE, 100)
    one_over = Image.new("RGB", (STORED_MAX_SIDE + 1, 100), "white")
    assert stored_form(one_over)[1] == STORED_MAX_SIDE
    tall = Image.new("RGB", (STORED_MAX_SIDE, 2 * STORED_MAX_SIDE), "white")
    data, width, height = stored_form(tall)
    assert (width, height) == (STORED_MAX_SIDE // 2, STORED_MAX_SIDE)
    assert Image.open(io.BytesIO(data)).size == (width, height)


def test_min_ink_fraction_separates_a_dot_from_a_blank_canvas():
    side = 1000
    needed = int(MIN_INK_FRACTION * side * side)
    assert needed == 500

    def canvas(ink_pixels):
        array = np.full((side, side), 255, np.uint8)
        array.reshape(-1)[np.arange(ink_pixels) * 997] = 0
        return Image.fromarray(array)

    with pytest.raises(BlankSketch):
        preprocess(canvas(needed - 1), SIZE)
    assert preprocess(canvas(needed), SIZE).shape == (SIZE, SIZE, 3)


def test_oversize_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from model import images
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG" + b"\0" * (images.MAX_IMAGE_BYTES + 1))
    opened = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError("read")))
    with pytest.raises(images.BadImage, match="larger than"):
        images.read_file(path)
    assert opened == []


def test_grey_fast_path_gives_the_pixels_of_the_colour_path(monkeypatch):
    # Cached features stay valid only if the one-channel shortcut changes nothing.
    drawings = [image for _, image in dataset(3, seed=21)]
    edge = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(edge).line([(0, 0), (299, 10)], fill=0, width=5)  # ink at the border
    drawings.append(edge)
    fast = [images.preprocess(image, 224) for image in drawings]
    monkeypatch.setattr(images, "_is_grey", lambda rgb: False)
    for image, expected in zip(drawings, fast):
        assert np.array_equal(images.preprocess(image, 224), expected)


def test_one_channel_grey_arrays_carry_the_same_pixels_through_augmentation():
    drawing = dataset(1, seed=22)[0][1]
    wide = images.preprocess(drawing, 224)
    narrow = images.preprocess(drawing, 224, keep_grey=True)
    assert narrow.shape == (224, 224, 1) and np.array_equal(narrow[..., 0], wide[..., 0])
    for seed in range(4):
        assert np.array_equal(images.augment(narrow, seed=[seed, 9]),
                              images.augment(wide, seed=[seed, 9])[..., :1])
    photo = np.asarray(Image.new("RGB", (64, 64), (250, 240, 200)))
    photo = photo.copy()
    photo[20:40, 20:40] = (30, 60, 90)
    assert images.preprocess(photo, 224, keep_grey=True).shape == (224, 224, 3)


def test_a_batch_mixing_grey_sketches_and_colour_photos_widens_only_the_grey_ones():
    from model.features import prepare_chunk
    sketch = stored_form(dataset(1, seed=23)[0][1])[0]
    photo = Image.new("RGB", (80, 60), (240, 230, 190))
    ImageDraw.Draw(photo).ellipse((20, 10, 60, 50), outline=(40, 20, 120), width=4)
    keys, arrays, skipped = prepare_chunk([(1, sketch, [0, 1]), (2, stored_form(photo)[0], [0])],
                                          224)
    assert (keys, skipped) == ([(1, 0), (1, 1), (2, 0)], [])
    assert arrays.shape == (3, 224, 224, 3)
    assert np.array_equal(arrays[0], preprocess(decode(sketch), 224))
    assert not np.array_equal(arrays[2][..., 0], arrays[2][..., 2])
    alone = prepare_chunk([(1, sketch, [0, 1])], 224)[1]
    assert alone.shape == (2, 224, 224, 1) and np.array_equal(alone[..., 0], arrays[:2, ..., 0])


def test_the_paper_level_is_numpys_percentile_to_the_last_bit():
    # The crop's paper level comes from a histogram, for speed; every cached
    # feature depends on it being NumPy's percentile exactly.
    from model.images import _percentile
    rng = np.random.default_rng(0)
    for trial in range(2000):
        count = int(rng.integers(1, 5000))
        pale = rng.random() < 0.5
        levels = (rng.integers(245, 256, count) if pale else rng.integers(0, 256, count))
        levels = levels.astype(np.uint8)
        for q in (10, 50, 90):
            assert _percentile(levels, q) == np.percentile(levels, q)


def test_importing_preprocessing_keeps_opencv_to_one_thread_a_call():
    # A fresh interpreter: what a server or a retrain worker gets on import.
    code = "import cv2; before = cv2.getNumThreads(); import model.images; " \
           "print(before, cv2.getNumThreads())"
    before, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True, cwd=ROOT).stdout.split()
    assert int(before) > 1 or os.cpu_count() == 1
    assert after == "1"
