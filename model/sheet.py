"""Finding a sheet of paper in a photo and reading the sketch on it (OpenCV).

`find_sketch` takes an RGB photo and returns the sketch as a clean grey
black-on-white image, upright and with the light flattened, together with
where the sheet was found, or None when no sheet holding a sketch is in view.
"""
import collections

import cv2
import numpy as np

# The sheet is searched for in a copy this many pixels on its long side.
WORK_SIDE = 320
# A sheet covers at least this share of the frame.
MIN_SHEET_AREA = 0.04
# Its outline fills at least this share of the quadrilateral fitted to it.
MIN_RECTANGULARITY = 0.9
# Candidates rank by area x rectangularity to this power: a near-perfect
# quadrilateral beats a larger, rougher region (the room around a sheet).
RECTANGULARITY_WEIGHT = 12
# At most this share of its outline runs along the frame's edge: more is the
# room (or a wall filling the view), not a sheet partly out of frame.
MAX_FRAME_EDGE = 0.35
# Brightness levels tried, as percentiles of the darkest channel (Otsu's is added).
LEVEL_PERCENTILES = (50, 75, 90, 96)
# A sheet is at least this much brighter (grey levels of its darkest channel)
# than a band BAND pixels wide around it: paper is the brightest thing in view.
MIN_CONTRAST = 10
# Outlined by edges, a sheet may be in shadow, darker than a lit wall behind.
EDGE_MIN_CONTRAST = -40
BAND = 15
# Canny's hysteresis thresholds for the sheet's outline.
EDGE_LOW, EDGE_HIGH = 20, 50
# The rectified sheet's long side (pixels): the backbone sees 224.
SHEET_SIDE = 320
# Dropped from each side of the rectified sheet: its edge and the room just past it.
BORDER = 0.03
# After dividing by the paper's light, ink is below INK_RATIO; the stretch maps
# BLACK_RATIO and darker to black and WHITE_RATIO and lighter to white.
INK_RATIO = 0.82
BLACK_RATIO = 0.45
WHITE_RATIO = 0.86
# A sketch covers this range of the sheet's area, in strokes thinner than
# THIN_STROKE of the sheet's short side.
INK_AREA = (0.002, 0.3)
THIN_STROKE = 0.04
MIN_THIN_SHARE = 0.6
# Strokes are widened to about this share of the sketch's longer side (a
# Quick, Draw! doodle's strokes are 0.08-0.1 of it).
STROKE_WIDTH = 0.06
# Paper is even once its light is divided out; a textured or patterned region
# (the room) is not: the spread of the non-ink pixels stays under this.
MAX_PAPER_SPREAD = 0.04

Sketch = collections.namedtuple("Sketch", "grey corners transform score")
Sketch.__doc__ = """grey: the clean sketch (uint8, black on white). corners: the sheet's
corners in the photo, clockwise from top-left, as float32 (4, 2). transform: the
homography from the photo to `grey`. score: the sheet's share of the frame x
its rectangularity ** RECTANGULARITY_WEIGHT."""


def find_sketch(rgb):
    """RGB uint8 array -> Sketch, or None when no sheet with a sketch is in view.

    Pure: the same photo gives the same answer, and the array is not written to.
    """
    rgb = np.asarray(rgb)
    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    candidates = sorted(_sheets(small), key=lambda c: -c[1])
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for quad, score in candidates:
        corners = (quad / scale).astype(np.float32)
        sketch, transform = _rectified(grey, corners)
        if sketch is not None:
            return Sketch(sketch, corners, transform, score)
    return None


def _sheets(small):
    """(corners, score) of each bright, nearly rectangular region: the paper is
    bright in every channel, so its darkest channel stands out from the room."""
    darkest = cv2.min(cv2.min(small[..., 0], small[..., 1]), small[..., 2])
    otsu, _ = cv2.threshold(darkest, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    share = np.cumsum(np.bincount(darkest.ravel(), minlength=256)) / darkest.size
    levels = {int(otsu)} | {int(np.searchsorted(share, p / 100)) for p in LEVEL_PERCENTILES}
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    # Opening cuts thin bright bridges between the sheet and the room.
    masks = [(cv2.morphologyEx((darkest > level).astype(np.uint8), cv2.MORPH_OPEN, kernel),
              MIN_CONTRAST) for level in sorted(levels)]
    # A sheet as pale as the wall behind it, or in shadow in front of it, is
    # still outlined by its edges.
    edges = cv2.Canny(cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (5, 5), 0),
                      EDGE_LOW, EDGE_HIGH)
    masks += [(1 - cv2.dilate(edges, np.ones((side, side), np.uint8)) // 255, EDGE_MIN_CONTRAST)
              for side in (3, 5)]
    area = darkest.size
    height, width = darkest.shape
    frame = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    min_outline = 2 * np.sqrt(MIN_SHEET_AREA * area)
    found, seen = [], set()
    for mask, min_contrast in masks:
        # Outer boundaries of every region, nested ones too: a sheet outlined
        # by its edges lies in a hole of the room's region.
        contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0] if contours else []):
            # A region of MIN_SHEET_AREA has an outline at least 4 sqrt(area)
            # long, so of at least 2 sqrt(area) points (a diagonal step is one
            # point): counting them first skips the specks of noise cheaply.
            if parent >= 0 or len(contour) < min_outline:
                continue
            region = cv2.contourArea(contour)
            if region < MIN_SHEET_AREA * area or _on_frame_edge(contour, mask.shape) > MAX_FRAME_EDGE:
                continue
            quad = _quadrilateral(contour, mask.shape)
            # Several masks outline the same sheet: each is judged once.
            key = tuple(np.rint(quad / 3).astype(int).ravel())
            if key in seen:
                continue
            seen.add(key)
            # Only the part in view can be covered: a sheet partly out of frame
            # is as rectangular as one in full view.
            visible, _ = cv2.intersectConvexConvex(_clockwise(quad), frame)
            rectangularity = region / max(visible, 1.0)
            # Above 1, the region spills out of its quadrilateral: not four sides.
            if MIN_RECTANGULARITY <= rectangularity <= 1.05 and \
                    _brighter_than_around(darkest, quad) >= min_contrast:
                score = min(region / area, 1.0) * rectangularity ** RECTANGULARITY_WEIGHT
                found.append((_clockwise(quad), score))
    return found


def _brighter_than_around(darkest, quad):
    """How much brighter (darkest channel, mean) the quadrilateral is than a
    band just outside it; a sheet partly out of frame has its band where it is in view."""
    inside = np.zeros(darkest.shape, np.uint8)
    cv2.fillConvexPoly(inside, np.rint(quad).astype(np.int32), 1)
    band = cv2.dilate(inside, np.ones((BAND, BAND), np.uint8)) - inside
    if not inside.any() or not band.any():
        return 0.0
    return cv2.mean(darkest, inside)[0] - cv2.mean(darkest, band)[0]


def _on_frame_edge(contour, shape):
    points = contour.reshape(-1, 2)
    edge = ((points == 0) | (points == [shape[1] - 1, shape[0] - 1])).any(axis=1)
    return edge.mean()


def _quadrilateral(contour, shape):
    """The four corners of a region: its hull's four longest sides, extended to
    meet, so that a corner outside the frame or under a finger is still found.
    Sides along the frame's edge are used only when fewer than four others remain."""
    hull = cv2.convexHull(contour)
    polygon = cv2.approxPolyDP(hull, 0.015 * cv2.arcLength(hull, True), True).reshape(-1, 2)
    polygon = polygon.astype(np.float32)
    if len(polygon) < 4:
        return cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float32)
    ends = np.roll(polygon, -1, axis=0)
    limit = np.array([shape[1] - 1, shape[0] - 1], np.float32)
    on_edge = [bool(((np.abs(a - 0) < 2) & (np.abs(b - 0) < 2)).any()
                    or ((np.abs(a - limit) < 2) & (np.abs(b - limit) < 2)).any())
               for a, b in zip(polygon, ends)]
    length = np.linalg.norm(ends - polygon, axis=1)
    rank = np.lexsort((-length, on_edge))[:4]
    sides = sorted(rank)
    corners = [_meet(polygon[i], ends[i], polygon[j], ends[j])
               for i, j in zip(sides, sides[1:] + sides[:1])]
    if any(c is None for c in corners):
        return cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float32)
    return np.array(corners, np.float32)


def _meet(a, b, c, d):
    """Where the lines a-b and c-d cross; None when they are nearly parallel."""
    r, s = b - a, d - c
    cross = r[0] * s[1] - r[1] * s[0]
    if abs(cross) < 1e-6 * np.linalg.norm(r) * np.linalg.norm(s) + 1e-9:
        return None
    t = ((c - a)[0] * s[1] - (c - a)[1] * s[0]) / cross
    return a + t * r


def _clockwise(quad):
    """Corners from top-left, clockwise: the sheet is taken to be held roughly
    upright, which also decides between portrait and landscape."""
    center = quad.mean(axis=0)
    angles = np.arctan2(quad[:, 1] - center[1], quad[:, 0] - center[0])
    quad = quad[np.argsort(angles)]
    top_edges = np.roll(quad, -1, axis=0) - quad
    start = np.argmin(np.abs(np.arctan2(top_edges[:, 1], top_edges[:, 0])))
    return np.roll(quad, -start, axis=0)


def _rectified(grey, corners):
    """(clean sketch, photo -> sketch homography), or (None, None) when the
    quadrilateral holds no plausible sketch."""
    sheet, transform = upright_sheet(grey, corners)
    if sheet is None:
        return None, None
    clean = clean_sheet(sheet)
    return (None, None) if clean is None else (clean, transform)


def upright_sheet(grey, corners):
    """(upright sheet, photo -> sheet homography) of the quadrilateral at
    `corners` (float32 (4, 2), clockwise from the sheet's top-left) in a grey
    photo: SHEET_SIDE pixels on its long side, BORDER trimmed from each side;
    (None, None) when the quadrilateral is too small to hold a sketch."""
    corners = np.asarray(corners, np.float32)
    top, right, bottom, left = (np.linalg.norm(corners[i] - corners[(i + 1) % 4])
                                for i in range(4))
    width, height = max(top, bottom), max(left, right)
    if min(width, height) < 16:
        return None, None
    scale = SHEET_SIDE / max(width, height)
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    margin_x, margin_y = BORDER * width, BORDER * height
    target = np.float32([[-margin_x, -margin_y], [width + margin_x, -margin_y],
                         [width + margin_x, height + margin_y], [-margin_x, height + margin_y]])
    transform = cv2.getPerspectiveTransform(corners, target)
    sheet = cv2.warpPerspective(grey, transform, (width, height), flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_REPLICATE)
    return sheet, transform


def clean_sheet(sheet):
    """An upright grey sheet (uint8, edges trimmed) -> the clean sketch on it,
    black on white, or None when it holds no plausible sketch."""
    ratio = _flattened(sheet)
    ink = _without_border_ink(ratio < INK_RATIO)
    share = ink.mean()
    if not INK_AREA[0] <= share <= INK_AREA[1] or not _thin(ink):
        return None
    if ratio[ratio >= INK_RATIO].std() > MAX_PAPER_SPREAD:
        return None
    clean = np.clip((ratio - BLACK_RATIO) / (WHITE_RATIO - BLACK_RATIO), 0, 1)
    clean[~cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)] = 1
    return _strokes_widened(np.rint(clean * 255).astype(np.uint8), ink)


def _strokes_widened(grey, ink):
    """Pen strokes widened to STROKE_WIDTH of the sketch's size: a pen on paper
    draws thinner lines, for the size of the drawing, than a finger or a mouse
    on a canvas, and the classifier learns from both."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    outline = ink & ~cv2.erode(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    width = 2 * ink.sum() / max(outline.sum(), 1)
    grow = int(round(STROKE_WIDTH * side - width))
    if grow < 2:
        return grey
    return cv2.erode(grey, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))


def _flattened(sheet):
    """The sheet divided by its own light: a grey closing as wide as several
    strokes removes the ink and leaves the paper's brightness, shadows included."""
    # Light varies slowly: the closing runs on a quarter-size copy, for speed.
    height, width = sheet.shape
    small = cv2.resize(sheet, (max(1, width // 4), max(1, height // 4)),
                       interpolation=cv2.INTER_AREA)
    side = max(3, int(min(small.shape) * 0.08) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    paper = cv2.resize(cv2.GaussianBlur(paper, (0, 0), side / 4), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    return sheet.astype(np.float32) / np.maximum(paper.astype(np.float32), 1)


def _without_border_ink(ink):
    """Ink touching the sheet's edge is a finger, a shadow or the room: dropped."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), 8)
    height, width = ink.shape
    x, y, w, h = (stats[:, i] for i in range(4))
    touching = (x == 0) | (y == 0) | (x + w >= width) | (y + h >= height)
    touching[0] = True
    return ~touching[labels]


def _thin(ink):
    """Most of the ink is strokes, not filled blobs: an opening as wide as a
    thick stroke removes it."""
    side = max(3, int(min(ink.shape) * THIN_STROKE) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    blobs = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return blobs.sum() <= (1 - MIN_THIN_SHARE) * ink.sum()
