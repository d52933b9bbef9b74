"""Webcam photos of paper sketches (issue 12): drawings keep their pixels, the
sheet is found in simulated photos, the sketch on it is read, and what is not
a sketch (an empty room, a face, a blank sheet, a bad image) is said so.
The photos come from bench/webcam_photos.py, seeded."""
import functools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench import webcam_photos
from model.errors import BadImage, BlankSketch
from model.images import augment, decode, is_photo, on_paper, preprocess, stored_form, to_rgb
from model.sheet import Track, find_sketch
from model.sketches import dataset

SIZE = 224
SAMPLE = 40


def doodles(count):
    """Procedural drawings as doodles: the tests need no shared data."""
    return [np.asarray(image.convert("L")) for _, image in dataset(count // 4 + 1, seed=31)][:count]


def sketchpad(seed):
    """What the sketchpad sends: strokes on a transparent or white canvas, RGBA."""
    rng = np.random.default_rng(seed)
    background = (255, 255, 255, 255) if seed % 2 else (0, 0, 0, 0)
    layer = Image.new("RGBA", (800, 600), background)
    points = [tuple(int(v) for v in rng.uniform([50, 50], [750, 550])) for _ in range(8)]
    ImageDraw.Draw(layer).line(points, fill=(0, 0, 0, 255), width=int(rng.integers(3, 20)))
    return np.asarray(layer)


@functools.cache
def drawings():
    return ([image for _, image in dataset(5, seed=3)] + [sketchpad(seed) for seed in range(6)]
            + [decode(stored_form(image)[0]) for _, image in dataset(2, seed=4)])


# -- drawings take the path they always took ----------------------------------------


@pytest.mark.parametrize("index", range(len(drawings())))
def test_drawings_are_not_photos_and_keep_their_pixels_byte_for_byte(index):
    image = drawings()[index]
    assert not is_photo(to_rgb(image))
    for keep_grey in (False, True):
        assert preprocess(image, SIZE, keep_grey=keep_grey).tobytes() == \
            preprocess(image, SIZE, keep_grey=keep_grey, sheets=False).tobytes()


# -- photos ----------------------------------------------------------------------------


@functools.cache
def photos():
    return [webcam_photos.photo(doodle, seed=500 + i) for i, doodle in enumerate(doodles(SAMPLE))]


def corner_error(found, truth):
    """Largest corner distance in pixels, whichever corner was taken as the top-left."""
    return min(np.linalg.norm(np.roll(found, k, axis=0) - truth, axis=1).max() for k in range(4))


def overlap(sketch, photo):
    """(precision, recall) of the ink read against the doodle's true ink, both
    mapped onto the rectified sheet, each allowing a few pixels of slack."""
    import cv2
    height, width = sketch.grey.shape
    truth = cv2.warpPerspective(photo.sheet_ink, sketch.transform @ photo.homography,
                                (width, height)) > 0.5
    read = sketch.grey < 128
    near = np.ones((9, 9), np.uint8)
    near_truth = cv2.dilate(truth.astype(np.uint8), near).astype(bool)
    near_read = cv2.dilate(read.astype(np.uint8), near).astype(bool)
    return (read & near_truth).sum() / max(read.sum(), 1), \
        (truth & near_read).sum() / max(truth.sum(), 1)


def test_every_simulated_photo_is_a_photo():
    assert all(is_photo(Image.fromarray(p.image)) for p in photos())


def test_a_photos_conditions_say_what_was_drawn_in_it():
    # bench.webcam --breakdown groups photos by these: they must match the photo.
    for photo in photos():
        conditions = photo.conditions
        sides = np.linalg.norm(photo.corners - np.roll(photo.corners, -1, axis=0), axis=1)
        assert conditions["sheet_side"] == pytest.approx(sides.max())
        ink = photo.sheet_ink > 0.5
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) <= conditions["drawing"]
        assert conditions["pen_in_frame"] == pytest.approx(
            conditions["pen"] * sides.max() / webcam_photos.SHEET_LONG)
        assert 50 <= conditions["jpeg"] <= 91 and 0 <= conditions["blur"] <= 1.4
    pencil = [p.conditions["pencil"] for p in photos()]
    assert 0 < sum(pencil) < len(pencil)
    # The pale rooms are the ones as bright as paper along the frame's edge.
    for photo in photos():
        edge = np.concatenate([photo.image[0], photo.image[-1]]).mean()
        assert (edge > 120) or not photo.conditions["pale_room"]


def test_a_photos_ink_is_the_doodles_own_strokes_unless_a_pen_redraws_them():
    # The clean drawings, the ceiling photos are measured against, show the
    # doodle itself; a pen tracing its centre lines draws another drawing.
    import cv2

    def cropped(mask):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
        return cv2.resize(box, (32, 32), interpolation=cv2.INTER_AREA) > 0.1

    def overlap(doodle, pen):
        ink = cropped(webcam_photos.photo(doodle, seed=5, pen=pen).sheet_ink > 0.5)
        drawn = cropped(doodle < 128)
        return (ink & drawn).sum() / (ink | drawn).sum()

    own = [overlap(doodle, "doodle") for doodle in doodles(8)]
    redrawn = [overlap(doodle, "redrawn") for doodle in doodles(8)]
    assert min(own) > 0.5 and np.mean(own) > np.mean(redrawn) + 0.1


def test_the_sheet_is_found_where_it_is_and_the_sketch_on_it_is_read():
    found = close = read = 0
    for photo in photos():
        sketch = find_sketch(photo.image)
        if sketch is None:
            continue
        found += 1
        close += corner_error(sketch.corners, photo.corners) < 30
        precision, recall = overlap(sketch, photo)
        read += precision > 0.8 and recall > 0.8
    # Measured on this sample: 37 found, 37 close, 37 read (was 33, 30, 30
    # before sheets were found by their sharp sides and read as drawings).
    assert found >= 0.85 * SAMPLE
    assert close >= 0.85 * SAMPLE
    assert read >= 0.85 * SAMPLE


def test_the_corners_found_lie_on_the_sheets_edges():
    errors = [corner_error(sketch.corners, photo.corners) for photo in photos()
              if (sketch := find_sketch(photo.image)) is not None]
    # Measured: a median of 2.3 pixels in a 640x480 frame (4.8 before the sides
    # were snapped onto the sheet's edges).
    assert np.median(errors) < 3.5



def test_quadrilaterals_weighed_and_snapped_together_get_what_each_gets_alone():
    # The straight-sides and outward searches weigh and snap their candidates
    # in one batch for speed: the answers must be those of one at a time.
    import cv2
    from model import sheet
    rng = np.random.default_rng(4)
    for photo in photos()[:6]:
        colour = cv2.GaussianBlur(cv2.resize(photo.image, (320, 240), interpolation=cv2.INTER_AREA),
                                  (3, 3), 0)
        true = np.float32(photo.corners) / 2
        # The sheet itself, near misses, and quadrilaterals partly out of frame.
        quads = np.float32([true] + [true + rng.normal(0, 6, (4, 2)) for _ in range(8)]
                           + [true + rng.uniform(-150, 150, 2) for _ in range(4)])
        for min_step in (sheet.EDGE_MIN_STEP, sheet.FAINT_MIN_STEP):
            together = sheet._edge_supports(colour, quads, min_step)
            assert together[0] > 0.5
            assert [sheet._edge_supports(colour, quad[None], min_step)[0]
                    for quad in quads] == list(together)
            for alone, snapped in zip(quads, sheet._snapped_all(colour, quads, min_step)):
                assert np.array_equal(sheet._snapped(colour, alone, min_step), snapped)
            darkest = colour.min(axis=2)
            bright = int(np.percentile(darkest, 95))
            judged = sheet._judged_all(colour, darkest, bright, quads, min_step)
            assert judged[0][2] is not None and any(support is None for *_, support in judged)
            assert [sheet._judged(colour, darkest, bright, quad, min_step)
                    for quad in quads] == judged

def scene(wall, paper, ruled=False, shadow=None, finger=False, pen=4):
    """A plain wall with one sheet in perspective holding a drawn circle and
    line, with sensor noise: (RGB photo, the sheet's corners)."""
    import cv2
    rng = np.random.default_rng(0)
    frame = np.empty((480, 640, 3), np.float32)
    frame[:] = wall
    sheet = np.empty((300, 220, 3), np.float32)
    sheet[:] = paper
    if ruled:
        for y in range(20, 300, 22):
            sheet[y:y + 2] = (150, 190, 235)
    cv2.circle(sheet, (110, 140), 50, (30, 30, 40), pen)
    cv2.line(sheet, (70, 200), (150, 90), (30, 30, 40), pen)
    corners = np.float32([[230, 80], [440, 100], [430, 400], [210, 380]])
    flat = np.float32([[0, 0], [220, 0], [220, 300], [0, 300]])
    homography = cv2.getPerspectiveTransform(flat, corners)
    mask = cv2.warpPerspective(np.ones((300, 220), np.float32), homography, (640, 480))[..., None]
    frame = frame * (1 - mask) + cv2.warpPerspective(sheet, homography, (640, 480)) * mask
    if finger:
        # Over the right edge of the sheet and onto the circle's stroke, drawn
        # as bench/webcam_photos.py draws one: a darker outline, a lit inside.
        cv2.ellipse(frame, (440, 245), (90, 22), 195, 0, 360, (157, 120, 98), -1)
        cv2.ellipse(frame, (440, 245), (86, 17), 195, 0, 360, (224, 172, 140), -1)
    if shadow is not None:
        light = np.ones((480, 640), np.float32)
        light[:, :shadow] = 0.6
        frame *= cv2.GaussianBlur(light, (0, 0), 8)[..., None]
    frame += rng.normal(0, 3, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8), corners


@pytest.mark.parametrize("wall, paper", [
    ((236, 236, 232), (250, 238, 170)),  # yellow paper, white wall: darker in its darkest channel
    ((236, 236, 232), (248, 248, 246)),  # white on white: only a faint edge
    ((110, 120, 130), (248, 214, 220)),  # pink paper, dark wall
])
def test_a_sheet_is_found_by_its_edges_whatever_its_colour_and_the_wall(wall, paper):
    photo, corners = scene(wall, paper)
    sketch = find_sketch(photo)
    assert sketch is not None and corner_error(sketch.corners, corners) < 8


@pytest.mark.parametrize("wall, paper", [
    ((238, 238, 236), (246, 246, 245)),  # white paper, a white wall 8 levels darker
    ((235, 235, 235), (244, 242, 240)),
    ((230, 226, 230), (240, 236, 238)),  # pale pink on pale mauve
])
def test_a_pale_sheet_on_a_pale_wall_is_found_by_its_faint_outline(wall, paper):
    photo, corners = scene(wall, paper)
    sketch = find_sketch(photo)
    # Measured: within 7.2 pixels; none of the three was found before the
    # search for faint outlines.
    assert sketch is not None and corner_error(sketch.corners, corners) < 10


@pytest.mark.parametrize("seed", [3293, 3414, 3848, 3863, 4405, 4526])
def test_a_pale_sheet_no_outline_bounds_is_found_from_its_sketch_outwards(seed):
    # Simulated photos in pale rooms where neither regions nor straight sides
    # outline the sheet (none was found before the outward search); rays from
    # the sketch stop on the sheet's faint sides.
    photo = webcam_photos.photo(doodles(SAMPLE)[seed % SAMPLE], seed=seed)
    assert photo.conditions["pale_room"]
    sketch = find_sketch(photo.image)
    assert sketch is not None and corner_error(sketch.corners, photo.corners) < 10
    precision, recall = overlap(sketch, photo)
    assert precision > 0.8 and recall > 0.8


@pytest.mark.parametrize("wall, paper", [
    ((246, 246, 245), (246, 246, 245)),  # white on white: no edge at all
    ((244, 244, 242), (247, 247, 246)),  # an edge of 3 levels, lost in the noise
])
def test_a_sketch_on_paper_as_pale_as_the_wall_is_read_from_the_paper_around_it(wall, paper):
    # No search outlines the sheet (none found it before the last resort):
    # the paper around the sketch is read. The corners are those of the
    # rectangle read, around the sketch and on the sheet.
    import cv2
    photo, corners = scene(wall, paper)
    sketch = find_sketch(photo)
    assert sketch is not None
    assert all(cv2.pointPolygonTest(corners, tuple(map(float, corner)), False) >= 0
               for corner in sketch.corners)
    homography = cv2.getPerspectiveTransform(
        np.float32([[0, 0], [220, 0], [220, 300], [0, 300]]), corners)
    # The circle (radius 50 about (110, 140) on the sheet) and the line are read whole.
    drawing = cv2.perspectiveTransform(np.float32([[[60, 140], [160, 140], [110, 90], [110, 190],
                                                    [70, 200], [150, 90]]]), homography)[0]
    assert all(cv2.pointPolygonTest(sketch.corners, tuple(map(float, point)), False) > 0
               for point in drawing)
    assert (sketch.grey < 128).mean() > 0.01
    assert preprocess(photo, SIZE).shape == (SIZE, SIZE, 3)


def test_faint_outlines_are_looked_for_only_when_no_sheet_is_found(monkeypatch):
    from model import sheet
    searches = []
    search = sheet._regions
    monkeypatch.setattr(sheet, "_regions",
                        lambda *args: searches.append(args[-1]) or search(*args))
    assert find_sketch(scene((120, 120, 125), (248, 248, 246))[0]) is not None
    assert searches == [False]
    searches.clear()
    assert find_sketch(webcam_photos.empty_room(1)) is None
    assert searches == [False, True]


@pytest.mark.parametrize("wall", [(120, 120, 125), (200, 196, 190)])
def test_a_drawing_on_lined_paper_is_read_without_its_lines(wall):
    photo, corners = scene(wall, (248, 248, 246), ruled=True)
    sketch = find_sketch(photo)
    assert sketch is not None and corner_error(sketch.corners, corners) < 8
    # The circle and the line are read; the ruled lines, crossing the whole
    # sheet, are not: no ink near the sheet's left and right edges.
    height, width = sketch.grey.shape
    ink = sketch.grey < 128
    assert ink.mean() > 0.01
    assert not ink[:, :width // 8].any() and not ink[:, -(width // 8):].any()


def test_a_finger_over_the_sheet_and_the_strokes_does_not_hide_the_sketch():
    photo, corners = scene((120, 120, 125), (248, 248, 246), finger=True)
    sketch = find_sketch(photo)
    assert sketch is not None and corner_error(sketch.corners, corners) < 8
    # The circle's far side is read; the finger, at the sheet's right edge, is not.
    height, width = sketch.grey.shape
    ink = sketch.grey < 128
    assert ink[:, : width // 2].mean() > 0.01
    assert not ink[:, -(width // 10):].any()


def test_a_shadow_across_the_sheet_does_not_cut_it_in_two():
    photo, corners = scene((120, 120, 125), (248, 248, 246), shadow=330)
    sketch = find_sketch(photo)
    assert sketch is not None and corner_error(sketch.corners, corners) < 8


def joined_to_a_pale_bar(top, bottom, wall=(120, 120, 125), paper=(248, 248, 246), pen=4):
    """The scene's sheet in front of a bar of its paper's colour (a window, a
    shelf) running from its right side out of frame: the bar and the sheet
    are one bright region, and no edge parts them along a stretch of the
    sheet's side."""
    import cv2
    photo, corners = scene(wall, paper, pen=pen)
    bar = np.zeros(photo.shape[:2], np.uint8)
    cv2.rectangle(bar, (400, top), (639, bottom), 1, -1)
    cv2.fillConvexPoly(bar, corners.astype(np.int32), 0)
    noise = np.random.default_rng(1).normal(0, 3, (int(bar.sum()), 3))
    photo[bar > 0] = np.clip(np.array(paper) + noise, 0, 255).astype(np.uint8)
    return photo, corners


@pytest.mark.parametrize("top, bottom", [(0, 250), (80, 200), (100, 250)])
def test_a_sheet_joined_to_a_pale_patch_is_found_by_its_straight_sides(top, bottom):
    photo, corners = joined_to_a_pale_bar(top, bottom)
    sketch = find_sketch(photo)
    # Measured: within 2.1-4.2 pixels; none of the three was found before
    # sheets were looked for as four straight lines.
    assert sketch is not None and corner_error(sketch.corners, corners) < 8


@pytest.mark.parametrize("wall, paper, top, bottom", [
    ((238, 238, 236), (246, 246, 245), 80, 200),
    ((230, 226, 230), (240, 236, 238), 0, 250),
    ((230, 226, 230), (240, 236, 238), 80, 200),
    ((230, 226, 230), (240, 236, 238), 100, 250),
])
def test_a_pale_sheet_joined_to_a_patch_of_its_paper_is_found_by_faint_straight_sides(
        wall, paper, top, bottom):
    # No region outlines the sheet, and its sides step 8-10 levels where they
    # show, too faint for the straight-sides search.
    photo, corners = joined_to_a_pale_bar(top, bottom, wall, paper)
    sketch = find_sketch(photo)
    # Measured: within 6.8-7.3 pixels. Of nine such scenes (three walls,
    # three patches) these four are found, none before faint straight sides
    # were looked for.
    assert sketch is not None and corner_error(sketch.corners, corners) < 10


@pytest.mark.parametrize("top, bottom", [(0, 250), (80, 200), (100, 250)])
def test_a_sheet_found_by_its_straight_sides_may_hold_a_sketch_in_broad_marker(top, bottom):
    # Strokes 14 pixels wide cover a tenth of the sheet: its inside is still
    # one paper, not a strip of the room.
    photo, corners = joined_to_a_pale_bar(top, bottom, pen=14)
    sketch = find_sketch(photo)
    assert sketch is not None and corner_error(sketch.corners, corners) < 8


def test_an_outline_with_a_side_across_the_wall_is_not_a_sheets():
    from model.sheet import _edge_supports
    photo, corners = scene((120, 120, 125), (248, 248, 246))
    small = np.ascontiguousarray(photo[::2, ::2])
    quad = corners / 2
    # Three sides on the sheet's edges, the right one out on the plain wall:
    # three quarters of the outline is still a sharp edge.
    wider = quad + np.float32([[0, 0], [40, 0], [40, 0], [0, 0]])
    supports = _edge_supports(small, np.float32([quad, wider]))
    assert supports[0] > 0.9 and supports[1] == 0


@pytest.mark.parametrize("pen", [8, 10, 14, 20])
def test_a_sketch_in_broad_marker_is_read(pen):
    # The circle and line drawn 8-20 pixels wide on a 220-pixel sheet (a
    # marker up to 2 cm wide on A4; a Quick, Draw! doodle's own strokes,
    # drawn as large as the sheet, are as broad). A sketch need not be
    # mostly thin strokes, and a broad stroke's soft edge is not uneven paper.
    photo, corners = scene((120, 120, 125), (248, 248, 246), pen=pen)
    sketch = find_sketch(photo)
    assert sketch is not None and corner_error(sketch.corners, corners) < 8
    assert (sketch.grey < 128).mean() > 0.01


@pytest.mark.parametrize("pen", [14, 20])
def test_a_sketch_in_broad_marker_reaches_the_network_in_strokes_as_wide_as_a_doodles(pen):
    # A Quick, Draw! doodle's strokes are about 10 pixels wide at 224; read
    # unthinned, a broad marker's reached 22-24 (and the doodles' own strokes,
    # photographed, 16.7 against 10.1: bench.webcam_oracle).
    import cv2
    photo, _ = scene((120, 120, 125), (248, 248, 246), pen=pen)
    ink = (preprocess(photo, SIZE)[..., 0] < 128).astype(np.uint8)
    outline = ink & ~cv2.erode(ink, np.ones((3, 3), np.uint8))
    assert 6 < 2 * ink.sum() / outline.sum() < 14


def test_finding_the_sketch_is_pure():
    photo = photos()[0].image
    before = photo.copy()
    first, second = find_sketch(photo), find_sketch(photo)
    assert np.array_equal(first.grey, second.grey) and np.array_equal(first.corners, second.corners)
    assert np.array_equal(photo, before)
    assert np.array_equal(preprocess(photo, SIZE), preprocess(photo, SIZE))


def test_a_frame_already_in_rgb_is_read_without_a_copy_through_pillow(monkeypatch):
    # A webcam frame (an RGB array, or a decoded RGB image) is judged and read
    # as the array it is; only other inputs are converted by to_rgb.
    from model import images
    photo = photos()[2].image
    expected = preprocess(photo, SIZE)
    monkeypatch.setattr(images, "to_rgb", lambda image: pytest.fail("converted"))
    assert np.array_equal(preprocess(photo, SIZE), expected)
    assert np.array_equal(preprocess(Image.fromarray(photo), SIZE), expected)


def test_telling_a_photo_from_a_drawing_sees_the_grey_pillow_sees():
    # is_photo makes only the pixels it looks at grey: they must be Pillow's
    # grey levels, or a drawing near the limit could change its path.
    from model.images import _luma
    pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert np.array_equal(_luma(pixels), np.asarray(Image.fromarray(pixels).convert("L")))
    for image in [p.image for p in photos()[:5]] + [np.asarray(to_rgb(d)) for d in drawings()]:
        assert is_photo(image) == is_photo(Image.fromarray(image))


def test_a_photo_becomes_a_grey_black_on_white_sketch():
    array = preprocess(photos()[1].image, SIZE, keep_grey=True)
    assert array.shape == (SIZE, SIZE, 1)
    assert array[0, 0, 0] == 255 and 0.005 < (array < 128).mean() < 0.4


# -- a live stream: the sheet is followed from frame to frame -------------------------


@functools.cache
def streams():
    return [webcam_photos.stream(doodle, seed=700 + i, frames=6)
            for i, doodle in enumerate(doodles(8))]


def test_a_sheet_held_in_a_stream_is_followed_instead_of_searched_for(monkeypatch):
    from model import sheet
    searches, shown = [], []
    search = sheet._regions
    # The frames the whole frame was searched in (a search may look for
    # regions twice: plain, then faint outlines).
    monkeypatch.setattr(sheet, "_regions", lambda *args: searches.append(len(shown)) or search(*args))
    followed = off = 0
    for frames in streams():
        track = Track()
        searches.clear()
        read = 0
        for frame in frames:
            shown.append(frame)
            try:
                preprocess(frame.image, SIZE, track=track)
            except BlankSketch:
                continue
            read += 1
            off += corner_error(track.corners, frame.corners) >= 16
        # Once found, the sheet is followed: the whole frame is searched only
        # while it has not been found.
        assert len(set(searches)) == 1 or read == 0
        followed += read
    # Measured: 48 of 48 frames read (42 before faint straight sides were
    # looked for: one stream's pale sheet was never found), all within 16
    # pixels of the sheet's corners, 41 within 4 (a side can slide on to a
    # stronger edge just past the sheet).
    assert followed >= 0.8 * 6 * len(streams()) and off == 0


def test_a_hint_where_the_sheet_is_not_falls_back_to_the_whole_frame():
    for frames in streams()[:4]:
        photo = frames[0]
        elsewhere = np.float32([[20, 20], [120, 20], [120, 150], [20, 150]])
        found = find_sketch(photo.image, near=elsewhere)
        plain = find_sketch(photo.image)
        assert (found is None) == (plain is None)
        if plain is not None:
            assert np.allclose(found.corners, plain.corners)


def test_a_hint_does_not_make_a_sheet_of_a_frame_without_one():
    corners = streams()[0][0].corners
    assert sum(find_sketch(webcam_photos.empty_room(seed), near=corners) is not None
               for seed in range(10)) <= 1


def test_a_track_holds_one_sheet_and_ignores_frames_of_another_size():
    track = Track()
    frame = streams()[1][0]
    preprocess(frame.image, SIZE, track=track)
    assert track.corners.shape == (4, 2) and track.near((240, 320, 3)) is None
    with pytest.raises(BlankSketch):
        preprocess(webcam_photos.empty_room(3), SIZE, track=track)
    assert track.corners is None


# -- the paper view: what training adds so that drawings teach photos -------------------


def test_a_drawings_paper_view_looks_to_the_backbone_like_a_photo_of_it(backbone):
    # Taught on the canvas, a model learns each drawing's paper view too: it
    # must be nearer than the drawing itself to what the webcam path reads
    # from a photo of that drawing.
    triples = []
    for index, (doodle, photo) in enumerate(zip(doodles(SAMPLE), photos())):
        try:
            read = preprocess(photo.image, SIZE)
        except BlankSketch:
            continue
        drawing = preprocess(doodle, SIZE)
        triples.append((drawing, on_paper(drawing, [1, index]), read))
    features = backbone(np.asarray(triples, np.float32).reshape(-1, SIZE, SIZE, 3),
                        training=False).numpy().reshape(len(triples), 3, -1)
    features /= np.linalg.norm(features, axis=2, keepdims=True)
    plain = 1 - (features[:, 0] * features[:, 2]).sum(axis=1)
    paper = 1 - (features[:, 1] * features[:, 2]).sum(axis=1)
    assert len(triples) >= 0.85 * SAMPLE
    # Measured on this sample: mean cosine distances 0.04 (paper view) and
    # 0.27 (the drawing), the paper view nearer for every drawing.
    assert paper.mean() < 0.5 * plain.mean() and (paper < plain).mean() >= 0.9


def pieces_and_holes(mask):
    """(8-connected pieces of ink, 4-connected holes of paper enclosed by it)."""
    import cv2
    ink = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1
    paper = np.pad(mask == 0, 1, constant_values=True).astype(np.uint8)
    return ink, cv2.connectedComponents(paper, connectivity=4)[0] - 2


@pytest.mark.parametrize("shape", ["X", "T", "ring", "figure eight"])
def test_centre_lines_keep_strokes_joined_and_loops_closed_like_a_pen(shape):
    # The paper view and the simulated photos redraw a drawing along its
    # centre lines: a pen on paper does not break a stroke where it meets
    # another, nor open a loop.
    from model.images import centre_lines
    image = Image.new("L", (200, 200), 0)
    draw = ImageDraw.Draw(image)
    lines = {"X": [((30, 30), (170, 170)), ((170, 30), (30, 170))],
             "T": [((20, 40), (180, 40)), ((100, 40), (100, 180))]}
    for line in lines.get(shape, []):
        draw.line(line, fill=1, width=17)
    if shape == "ring":
        draw.ellipse((30, 40, 170, 160), outline=1, width=19)
    if shape == "figure eight":
        draw.ellipse((50, 10, 150, 100), outline=1, width=15)
        draw.ellipse((45, 92, 155, 190), outline=1, width=15)
    mask = np.asarray(image, np.uint8)
    lines = centre_lines(mask)
    assert pieces_and_holes(lines) == pieces_and_holes(mask)
    assert pieces_and_holes(mask) == (1, {"ring": 1, "figure eight": 2}.get(shape, 0))
    # A line about a pixel wide along the stroke, not the stroke kept whole.
    assert lines.dtype == np.uint8 and set(np.unique(lines)) == {0, 1}
    assert lines.sum() < 0.12 * mask.sum() and not (lines & ~mask.astype(bool)).any()


def test_the_paper_view_is_deterministic_and_keeps_the_channels():
    drawing = preprocess(doodles(1)[0], SIZE, keep_grey=True)
    before = drawing.copy()
    first, again = on_paper(drawing, [1, 7]), on_paper(drawing, [1, 7])
    assert np.array_equal(first, again) and np.array_equal(drawing, before)
    assert not np.array_equal(first, on_paper(drawing, [1, 8]))
    assert first.shape == (SIZE, SIZE, 1) and first.dtype == np.uint8
    assert 0.005 < (first < 128).mean() < 0.4
    wide = np.repeat(drawing, 3, axis=-1)
    assert np.array_equal(on_paper(wide, [1, 7]), np.repeat(first, 3, axis=-1))


def test_a_drawing_the_sheet_reading_refuses_gets_an_augmented_view_instead(monkeypatch):
    from model import images
    drawing = preprocess(doodles(2)[1], SIZE, keep_grey=True)
    monkeypatch.setattr(images, "clean_sheet", lambda sheet: None)
    assert np.array_equal(on_paper(drawing, [1, 3]), augment(drawing, [1, 3]))


# -- what is not a sketch --------------------------------------------------------------


def refused(images):
    """How many of the images preprocess refuses with BlankSketch."""
    count = 0
    for image in images:
        try:
            preprocess(image, SIZE)
        except BlankSketch:
            count += 1
    return count


def test_a_photo_without_a_sketch_says_no_sketch_in_view():
    room = webcam_photos.empty_room(0)
    assert is_photo(to_rgb(room))
    with pytest.raises(BlankSketch, match="No sketch in view"):
        preprocess(room, SIZE)


def test_an_empty_room_is_no_sketch_in_view():
    assert refused([webcam_photos.empty_room(seed) for seed in range(20)]) >= 18


def test_a_face_is_not_forced_into_a_sketch():
    assert refused([webcam_photos.face(seed) for seed in range(20)]) >= 18


def test_a_blank_sheet_is_no_sketch_in_view():
    assert refused([webcam_photos.blank_sheet(seed).image for seed in range(20)]) >= 19


def test_a_blank_sheet_framed_by_lines_of_the_room_is_no_sketch_in_view():
    # Looked for by its straight sides, a blank sheet with one side along a
    # line of the room takes in a strip of the room, whose edge reads as a
    # stroke: 5 of these 60 were taken for a sketch until the inside had to
    # be one paper almost throughout.
    assert refused([webcam_photos.blank_sheet(seed).image for seed in range(40, 100)]) >= 59


def on_a_plain_wall(draw, wall):
    """A photo of a plain wall with something drawn on it (by `draw`, on the
    float frame), with sensor noise."""
    frame = np.empty((480, 640, 3), np.float32)
    frame[:] = wall
    draw(frame)
    frame += np.random.default_rng(0).normal(0, 3, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_a_rectangle_or_a_line_on_a_pale_wall_is_not_read_as_a_sketch(monkeypatch):
    # With no sheet in view, the last resort reads the paper around a
    # sketch; the lines and rectangle outlines of a room are straight.
    import cv2
    from model import sheet
    outline = on_a_plain_wall(lambda frame: cv2.rectangle(frame, (250, 150), (420, 330),
                                                          (60, 50, 70), 4), (240, 240, 237))
    line = on_a_plain_wall(lambda frame: cv2.line(frame, (200, 120), (430, 360), (60, 50, 70), 4),
                           (240, 240, 237))
    assert find_sketch(outline) is None and find_sketch(line) is None
    monkeypatch.setattr(sheet, "SKETCH_MAX_STRAIGHT", 1.0)
    assert find_sketch(outline) is not None


@pytest.mark.parametrize("skin", [(224, 172, 140), (240, 200, 170)])
def test_a_mouth_on_a_face_is_not_read_as_a_sketch_on_paper(skin, monkeypatch):
    # A face brighter than the room, its mouth drawn in two strokes as large
    # as a sketch: the skin around them is not paper.
    import cv2
    from model import sheet

    def face(frame):
        cv2.ellipse(frame, (320, 240), (170, 220), 0, 0, 360, skin, -1)
        cv2.ellipse(frame, (320, 270), (80, 40), 0, 10, 170, (120, 50, 50), 6)
        cv2.ellipse(frame, (320, 262), (60, 26), 0, 20, 160, (120, 50, 50), 5)

    photo = on_a_plain_wall(face, (160, 160, 170))
    assert find_sketch(photo) is None
    monkeypatch.setattr(sheet, "SKIN_SATURATION", 2.0)
    assert find_sketch(photo) is not None


def test_of_two_sheets_the_one_with_the_sketch_is_read_or_none_is():
    answers = []
    for seed, doodle in enumerate(doodles(20)):
        photo = webcam_photos.two_sheets(doodle, seed)
        sketch = find_sketch(photo.image)
        answers.append(sketch is None or corner_error(sketch.corners, photo.corners) < 40)
    # Measured: 19 of 20 (18 before sheets were judged by their sharp sides).
    assert sum(answers) >= 19


def test_a_sheet_partly_out_of_frame_is_still_read_mostly():
    found = sum(find_sketch(webcam_photos.out_of_frame(doodle, seed).image) is not None
                for seed, doodle in enumerate(doodles(20)))
    # Measured: 16 of 20 (14 before).
    assert found >= 16


@pytest.mark.parametrize("shape", [(1, 1), (1, 500), (500, 1), (3, 3), (2, 4000), (4000, 2),
                                   (16, 16)])
@pytest.mark.parametrize("fill", ["noise", "white", "black"])
def test_tiny_thin_and_odd_images_give_a_clear_answer_never_a_crash(shape, fill):
    rng = np.random.default_rng(0)
    image = {"noise": rng.integers(0, 256, shape + (3,), dtype=np.uint8),
             "white": np.full(shape + (3,), 255, np.uint8),
             "black": np.zeros(shape + (3,), np.uint8)}[fill]
    try:
        array = preprocess(image, SIZE)
    except (BadImage, BlankSketch):
        return
    assert array.shape == (SIZE, SIZE, 3)
