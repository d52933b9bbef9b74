"""Simulated webcam photos of paper sketches, for tests and benchmarks.

`photo(doodle, seed)` draws a doodle (a black-on-white array of any size, such
as a 28x28 Quick, Draw! bitmap) in ink or pencil on a sheet of paper, its own
strokes scaled up (or, with pen="redrawn", its centre lines traced by a pen),
sets the sheet in perspective in front of a cluttered room, and adds what a
webcam adds: uneven light, a finger, blur, sensor noise and JPEG. Everything is
drawn from `seed`, so a photo is the same on every run. `stream` gives the
frames of one sheet moving a little from frame to frame. The fixtures
(`empty_room`, `face`, `blank_sheet`, `two_sheets`, `out_of_frame`) are the
cases a sheet finder must not be fooled by.
"""
import collections
import math

import cv2
import numpy as np

from model.images import centre_lines

# Part of the name of cached photos (bench.webcam_oracle): bump it whenever the
# photos drawn from a seed change. 2: the pen follows a connected thinning.
# 3: the doodle's own strokes are the ink (pen="redrawn" draws version 2's).
VERSION = 3
WIDTH, HEIGHT = 640, 480
# The sheet is rendered at this long side before it is put in perspective.
SHEET_LONG = 440
FOCAL = 700.0
PAPERS = {"white": (248, 248, 246), "off-white": (240, 234, 220), "yellow": (250, 238, 170),
          "pink": (248, 214, 220), "blue": (208, 226, 246), "green": (214, 240, 208)}
INKS = ((20, 20, 24), (25, 35, 110), (40, 40, 40), (70, 30, 30))
SKIN = ((224, 172, 140), (198, 140, 100), (150, 100, 70), (240, 200, 170))

Photo = collections.namedtuple("Photo", "image corners homography sheet_ink conditions")
Photo.__doc__ = """image: 480x640x3 uint8 RGB. corners: the sheet's corners in the frame
(top-left, top-right, bottom-right, bottom-left of the sheet), None without a sheet.
homography: sheet pixels -> frame pixels. sheet_ink: the doodle's ink (0..1) on the sheet.
conditions: what was drawn for this photo (a dict, see `photo`)."""


def photo(doodle, seed, sheets=1, ink=True, out_of_frame=False, pen="doodle"):
    """A webcam frame showing `doodle` on a sheet (or a blank one with ink=False).

    `pen` chooses the ink (`_strokes`): "doodle" or "redrawn". Its
    `conditions` name what was drawn for the first sheet and the camera:
    paper, lined, pencil, darkness, pen (the strokes' width in the sheet's
    pixels), drawing (the doodle's size there), sheet_side (the sheet's
    longest side in the frame), tilt and turn (degrees), finger, pale_room,
    light (the light's gain at the frame's centre), shadow, blur (sigma,
    pixels), noise (sigma, grey levels) and jpeg (quality). `pen_in_frame`
    and `drawing_in_frame` are the pen's width and the doodle's size in the
    frame's pixels."""
    rng = np.random.default_rng(seed)
    conditions = {}
    frame = room(rng, conditions)
    placed = []
    for index in range(sheets):
        sheet, alpha = _sheet(doodle if ink and index == 0 else None, rng,
                              conditions if index == 0 else {}, pen)
        corners, homography = _pose(sheet.shape, rng, sheets, index,
                                    conditions if index == 0 else {})
        if out_of_frame:
            corners, homography = _push_out(sheet.shape, alpha, corners, rng)
        frame = _paste(frame, sheet, homography)
        placed.append((corners, homography, alpha))
    conditions["finger"] = bool(rng.random() < 0.3)
    if conditions["finger"]:
        _finger(frame, placed[0][0], rng)
    corners, homography, alpha = placed[0]
    image = _camera(frame, rng, conditions)
    _in_frame(conditions, corners)
    return Photo(image, corners, homography, alpha, conditions)


def stream(doodle, seed, frames=8, step=6.0, turn=1.5, pen="doodle"):
    """Frames of one sheet held up to the camera, as a live stream sends them:
    the room, the sheet, the light and the camera stay; between two frames
    the sheet moves up to `step` pixels and turns up to `turn` degrees.
    Returns a list of Photo."""
    rng = np.random.default_rng(seed)
    conditions = {}
    background = room(rng, conditions)
    sheet, alpha = _sheet(doodle, rng, conditions, pen)
    corners, homography = _pose(sheet.shape, rng, 1, 0, conditions)
    camera = int(rng.integers(1 << 31))
    out = []
    for _ in range(frames):
        frame = _paste(background, sheet, homography)
        shown = dict(conditions, finger=False)
        image = _camera(frame, np.random.default_rng(camera), shown)
        _in_frame(shown, corners)
        out.append(Photo(image, corners, homography, alpha, shown))
        angle = math.radians(rng.uniform(-turn, turn))
        shift = rng.uniform(-step, step, 2)
        center = corners.mean(axis=0)
        cos, sin = math.cos(angle), math.sin(angle)
        # About the sheet's centre, then shifted; kept in the frame.
        move = np.array([[cos, -sin, center[0] - cos * center[0] + sin * center[1] + shift[0]],
                         [sin, cos, center[1] - sin * center[0] - cos * center[1] + shift[1]],
                         [0, 0, 1]])
        moved = cv2.perspectiveTransform(corners[None], move)[0]
        if ((moved < 0) | (moved > [WIDTH - 1, HEIGHT - 1])).any():
            move = np.linalg.inv(move)
            moved = cv2.perspectiveTransform(corners[None], move)[0]
        corners, homography = moved.astype(np.float32), move @ homography
    return out


def empty_room(seed):
    """A frame of the room alone: no sheet, no sketch."""
    rng = np.random.default_rng(seed)
    return _camera(room(rng), rng, {})


def face(seed):
    """A colour photo that is not a sketch: a face-like ellipse with eyes and a mouth."""
    rng = np.random.default_rng(seed)
    frame = room(rng)
    skin = np.array(SKIN[rng.integers(len(SKIN))], float)
    center = (int(WIDTH / 2 + rng.uniform(-60, 60)), int(HEIGHT / 2 + rng.uniform(-30, 30)))
    axes = (int(rng.uniform(90, 130)), int(rng.uniform(120, 170)))
    cv2.ellipse(frame, center, axes, 0, 0, 360, skin.tolist(), -1)
    for side in (-1, 1):
        eye = (center[0] + side * axes[0] // 2, center[1] - axes[1] // 4)
        cv2.ellipse(frame, eye, (18, 10), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(frame, eye, 7, (40, 30, 20), -1)
    cv2.ellipse(frame, (center[0], center[1] + axes[1] // 2), (40, 14), 0, 0, 180,
                (150, 60, 60), 5)
    cv2.ellipse(frame, (center[0], center[1] - axes[1]), (axes[0], axes[1] // 2), 0, 180, 360,
                (50, 35, 25), -1)
    return _camera(frame, rng, {})


def blank_sheet(seed):
    return photo(None, seed, ink=False)


def two_sheets(doodle, seed):
    """Two sheets side by side; the doodle is on the first, the second is blank."""
    return photo(doodle, seed, sheets=2)


def out_of_frame(doodle, seed):
    """The sheet partly outside the frame; the doodle stays in view."""
    return photo(doodle, seed, out_of_frame=True)


def room(rng, conditions=None):
    """A cluttered background: a gradient, then boxes, blobs, lines and texture,
    sometimes as pale as paper."""
    pale = rng.random() <= 0.2
    if conditions is not None:
        conditions["pale_room"] = bool(pale)
    base = rng.uniform(200, 250, 3) if pale else rng.uniform(20, 235, 3)
    other = np.clip(base + rng.uniform(-90, 90, 3), 0, 255)
    ramp = np.linspace(0, 1, WIDTH)[None, :] if rng.random() < 0.5 \
        else np.linspace(0, 1, HEIGHT)[:, None]
    ramp = np.broadcast_to(ramp, (HEIGHT, WIDTH))[..., None]
    frame = (base * (1 - ramp) + other * ramp).astype(np.float32)
    for _ in range(rng.integers(4, 16)):
        colour = rng.uniform(0, 255, 3).tolist()
        x, y = rng.integers(-100, WIDTH), rng.integers(-100, HEIGHT)
        w, h = rng.integers(30, 300, 2)
        kind = rng.integers(4)
        if kind == 0:
            cv2.rectangle(frame, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
        elif kind == 1:
            cv2.ellipse(frame, (int(x), int(y)), (int(w // 2), int(h // 2)),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1)
        elif kind == 2:
            cv2.line(frame, (int(x), int(y)), (int(x + w), int(y + h)), colour,
                     int(rng.integers(1, 12)))
        else:
            cv2.rectangle(frame, (int(x), int(y)), (int(x + w), int(y + h)), colour,
                          int(rng.integers(2, 8)))
    texture = cv2.GaussianBlur(rng.normal(0, rng.uniform(3, 25), (HEIGHT, WIDTH)).astype(
        np.float32), (0, 0), rng.uniform(0.5, 4))
    frame += texture[..., None]
    # Rooms are mostly duller than paint-box colours.
    grey = frame.mean(axis=2, keepdims=True)
    frame = grey + (frame - grey) * rng.uniform(0.2, 1.0)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _strokes(doodle, side, rng, conditions, pen="doodle", weight=True):
    """A black-on-white bitmap -> ink coverage (0..1) `side` pixels wide.

    pen="doodle" (the default) puts the doodle itself on the sheet, as the
    clean drawings the ceiling is measured on show it: the bitmap's smooth
    upscale, thresholded, its strokes made a drawn 0.6-1.1 times as heavy
    (`weight=False` keeps the bitmap's own weight), antialiased. Scaled up,
    a 28-px doodle's strokes are already a broad marker's (2-7 % of the
    sheet's short side), so the weight is mostly lighter than its own.
    pen="redrawn" traces the thresholded upscale's centre lines (joined
    where strokes meet) with a pen 1.2-3.5 % of `side` wide instead: a
    path read back from a 28-px bitmap, which loses about 3 points of
    accuracy before any camera (bench.webcam_oracle --pens), so bench.webcam
    --pen redrawn reports it as the harder variant. `conditions["pen"]` is
    the strokes' width in pixels either way. The same draws are taken from
    `rng` for every option."""
    ink = 1 - np.asarray(doodle, np.float32) / 255
    height = max(1, round(side * ink.shape[0] / ink.shape[1]))
    big = cv2.resize(ink, (side, height), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), side / ink.shape[1] * 0.5)
    mask = (big > rng.uniform(0.3, 0.5)).astype(np.uint8)
    if pen == "redrawn":
        width = max(2, round(side * rng.uniform(0.012, 0.035)))
        mask = cv2.dilate(centre_lines(mask), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (width, width)))
    else:
        heavier = rng.uniform(0.6, 1.1)
        if weight:
            mask = _weighted(mask, heavier)
        width = _stroke_width(mask)
    conditions["pen"] = width
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), rng.uniform(0.5, 1.0))


def _stroke_width(mask):
    """The strokes' mean width in pixels: twice their area over their outline's length."""
    outline = mask & ~cv2.erode(mask, np.ones((3, 3), np.uint8))
    return 2 * float(mask.sum()) / max(float(outline.sum()), 1.0)


def _weighted(mask, heavier):
    """The strokes of a uint8 mask grown or shrunk on both sides so that
    they are about `heavier` times as wide."""
    grow = (heavier - 1) * _stroke_width(mask) / 2
    if grow >= 0:
        return (cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3) <= grow).astype(np.uint8)
    return (cv2.distanceTransform(mask, cv2.DIST_L2, 3) > -grow).astype(np.uint8)


def _sheet(doodle, rng, conditions, pen="doodle"):
    """(RGB sheet, ink coverage) of a portrait or landscape sheet."""
    ratio = 1.414 if rng.random() < 0.6 else 1.294
    long_side, short_side = SHEET_LONG, int(SHEET_LONG / ratio)
    height, width = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    names = list(PAPERS)
    name = names[0] if rng.random() < 0.45 else names[rng.integers(len(names))]
    conditions["paper"] = name
    paper = np.clip(np.array(PAPERS[name], np.float32) + rng.uniform(-8, 4), 0, 255)
    sheet = np.empty((height, width, 3), np.float32)
    sheet[:] = paper
    conditions["lined"] = bool(rng.random() < 0.2)
    if conditions["lined"]:
        spacing = int(rng.integers(18, 30))
        line = np.array([150, 190, 235], np.float32)
        for y in range(int(rng.integers(20, 50)), height, spacing):
            sheet[y:y + 2] = sheet[y:y + 2] * 0.4 + line * 0.6
    alpha = np.zeros((height, width), np.float32)
    if doodle is not None:
        side = int(rng.uniform(0.45, 0.8) * min(height, width))
        strokes = _strokes(doodle, side, rng, conditions, pen)
        y = int(rng.integers(int(0.08 * height), height - strokes.shape[0] - int(0.08 * height)))
        x = int(rng.integers(int(0.08 * width), width - strokes.shape[1] - int(0.08 * width)))
        pencil = rng.random() < 0.35
        darkness = rng.uniform(0.45, 0.75) if pencil else rng.uniform(0.75, 0.98)
        conditions.update(drawing=side, pencil=bool(pencil), darkness=float(darkness))
        if pencil:
            grain = rng.uniform(0.6, 1.0, strokes.shape).astype(np.float32)
            strokes = strokes * cv2.GaussianBlur(grain, (0, 0), 0.7)
        alpha[y:y + strokes.shape[0], x:x + strokes.shape[1]] = strokes
        colour = np.array((60, 60, 60) if pencil else INKS[rng.integers(len(INKS))], np.float32)
        cover = (alpha * darkness)[..., None]
        sheet = sheet * (1 - cover) + colour * cover
    return sheet.astype(np.uint8), alpha


def _pose(shape, rng, sheets, index, conditions):
    """Corners in the frame and the homography of a sheet tilted in 3D (up to
    ~30 degrees), turned in the image plane, and placed in the frame."""
    height, width = shape[:2]
    tilt_x, tilt_y = np.radians(rng.uniform(-30, 30, 2))
    turn = np.radians(rng.uniform(-30, 30))
    conditions.update(tilt=float(np.degrees(max(abs(tilt_x), abs(tilt_y)))),
                      turn=float(abs(np.degrees(turn))))
    long_in_frame = rng.uniform(260, 470) if sheets == 1 else rng.uniform(220, 300)
    scale = long_in_frame / max(height, width)
    flat = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    points = np.c_[(flat - [width / 2, height / 2]) * scale, np.zeros(4)]
    rx = np.array([[1, 0, 0], [0, math.cos(tilt_x), -math.sin(tilt_x)],
                   [0, math.sin(tilt_x), math.cos(tilt_x)]])
    ry = np.array([[math.cos(tilt_y), 0, math.sin(tilt_y)], [0, 1, 0],
                   [-math.sin(tilt_y), 0, math.cos(tilt_y)]])
    rz = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0],
                   [0, 0, 1]])
    points = points @ (rz @ rx @ ry).T
    projected = FOCAL * points[:, :2] / (points[:, 2:] + FOCAL)
    if sheets > 1:
        center = np.array([WIDTH * (0.27 + 0.46 * index), HEIGHT / 2]) + rng.uniform(-15, 15, 2)
        projected *= 0.8
    else:
        extent = np.minimum(np.abs(projected).max(axis=0), [WIDTH / 2 - 5, HEIGHT / 2 - 5])
        slack = np.array([WIDTH / 2, HEIGHT / 2]) - extent
        center = np.array([WIDTH / 2, HEIGHT / 2]) + rng.uniform(-1, 1, 2) * slack * 0.9
    corners = (projected + center).astype(np.float32)
    homography = cv2.getPerspectiveTransform(flat.astype(np.float32), corners)
    return corners, homography


def _push_out(shape, alpha, corners, rng):
    """The sheet moved towards one edge of the frame until part of it is outside,
    but no further than keeps the doodle in view."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    ink_box = np.array([[cols[0], rows[0]], [cols[-1], rows[0]], [cols[-1], rows[-1]],
                        [cols[0], rows[-1]]], np.float32)
    height, width = shape[:2]
    flat = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    direction = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]][rng.integers(4)], np.float32)
    moved, homography = corners, cv2.getPerspectiveTransform(flat, corners)
    for step in range(10, 400, 10):
        shifted = corners + direction * step
        shifted_homography = cv2.getPerspectiveTransform(flat, shifted)
        ink = cv2.perspectiveTransform(ink_box[None], shifted_homography)[0]
        if ((ink < 4) | (ink > [WIDTH - 4, HEIGHT - 4])).any():
            break
        moved, homography = shifted, shifted_homography
    return moved, homography


def _paste(frame, sheet, homography):
    warped = cv2.warpPerspective(sheet, homography, (WIDTH, HEIGHT), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones(sheet.shape[:2], np.float32), homography, (WIDTH, HEIGHT))
    mask = mask[..., None]
    return (frame * (1 - mask) + warped * mask).astype(np.uint8)


def _finger(frame, corners, rng):
    """A finger (a skin-coloured, shaded ellipse) reaching over an edge of the sheet."""
    edge = rng.integers(4)
    a, b = corners[edge], corners[(edge + 1) % 4]
    point = a + (b - a) * rng.uniform(0.2, 0.8)
    outward = point - corners.mean(axis=0)
    outward /= np.linalg.norm(outward) + 1e-6
    center = point + outward * rng.uniform(10, 40)
    angle = math.degrees(math.atan2(outward[1], outward[0]))
    skin = np.array(SKIN[rng.integers(len(SKIN))], float)
    axes = (int(rng.uniform(50, 90)), int(rng.uniform(16, 26)))
    position = (int(center[0]), int(center[1]))
    cv2.ellipse(frame, position, axes, angle, 0, 360, (skin * 0.7).tolist(), -1)
    cv2.ellipse(frame, position, (axes[0] - 4, axes[1] - 5), angle, 0, 360, skin.tolist(), -1)


def _in_frame(conditions, corners):
    """The sheet's longest side in the frame, and the pen and the doodle at that scale."""
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    conditions["sheet_side"] = float(sides.max())
    if "pen" in conditions:
        scale = conditions["sheet_side"] / SHEET_LONG
        conditions["pen_in_frame"] = conditions["pen"] * scale
        conditions["drawing_in_frame"] = conditions["drawing"] * scale


def _light(frame, rng, conditions):
    """Uneven light: a tilted gradient, a bright spot and sometimes a shadow."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    ramp = ((xs - WIDTH / 2) * direction[0] + (ys - HEIGHT / 2) * direction[1]) / WIDTH
    gain = rng.uniform(0.75, 1.05) + ramp * rng.uniform(0, 0.5)
    spot = rng.uniform([0, 0], [WIDTH, HEIGHT])
    gain += rng.uniform(0, 0.15) * np.exp(-((xs - spot[0]) ** 2 + (ys - spot[1]) ** 2)
                                          / (2 * rng.uniform(100, 300) ** 2))
    conditions["light"] = float(gain[HEIGHT // 2, WIDTH // 2])
    conditions["shadow"] = bool(rng.random() < 0.35)
    if conditions["shadow"]:
        shadow = np.ones((HEIGHT, WIDTH), np.float32)
        points = rng.uniform([0, 0], [WIDTH, HEIGHT], (3, 2)).astype(np.int32)
        cv2.fillConvexPoly(shadow, cv2.convexHull(points), float(rng.uniform(0.6, 0.85)))
        gain *= cv2.GaussianBlur(shadow, (0, 0), rng.uniform(8, 30))
    return np.clip(frame * gain[..., None], 0, 255).astype(np.uint8)


def _camera(frame, rng, conditions):
    """Light, lens blur, sensor noise and JPEG compression, as a webcam delivers."""
    frame = _light(frame, rng, conditions).astype(np.float32)
    sigma = rng.uniform(0, 1.4)
    if sigma > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    noise = rng.uniform(1.5, 7)
    frame += rng.normal(0, noise, frame.shape).astype(np.float32)
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    quality = int(rng.integers(50, 92))
    conditions.update(blur=float(sigma) if sigma > 0.3 else 0.0, noise=float(noise),
                      jpeg=quality)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
