"""Finding a sheet of paper in a photo and reading the sketch on it (OpenCV).

`find_sketch` takes an RGB photo and returns the sketch as a clean grey
black-on-white image, upright and with the light flattened, together with
where the sheet was found, or None when no sheet holding a sketch is in view.
"""
import collections
import heapq
import itertools

import cv2
import numpy as np

# The sheet is searched for in a copy this many pixels on its long side.
WORK_SIDE = 320
# A sheet covers at least this share of the frame.
MIN_SHEET_AREA = 0.04
# Its outline fills at least this share of the quadrilateral fitted to it.
MIN_RECTANGULARITY = 0.8
# Candidates rank by area x rectangularity to this power: a near-perfect
# quadrilateral beats a larger, rougher region (the room around a sheet).
RECTANGULARITY_WEIGHT = 12
# At most this share of its outline runs along the frame's edge: more is the
# room (or a wall filling the view), not a sheet partly out of frame.
MAX_FRAME_EDGE = 0.35
# Brightness levels tried, as percentiles of the darkest channel (Otsu's is added).
LEVEL_PERCENTILES = (50, 60, 75, 90, 96)
# A sheet is at least this much brighter (grey levels of its darkest channel)
# than a band BAND pixels wide around it: paper is the brightest thing in view.
MIN_CONTRAST = 10
# Outlined by edges, a sheet may be in shadow, darker than a lit wall behind.
EDGE_MIN_CONTRAST = -100
BAND = 15
# Paper is at least this share as bright (darkest channel) as the brightest
# things in view (their 95th percentile): a dark box in the room is not paper.
# Measured on simulated photos: at least 0.6, 0.84 at the 5th percentile.
MIN_PAPER_LEVEL = 0.45
# A rectangle seen at up to about 30 degrees of perspective keeps its corners
# in this range (degrees); simulated photos: 74-118.
CORNER_ANGLES = (55, 125)
# A sheet's sides are sharp steps: at a point on a side, the step across
# +-EDGE_STEP pixels (in any channel) is at least EDGE_MIN_STEP levels, and it
# and the step across +-EDGE_WIDE pixels are each at least EDGE_SHARPNESS of
# the other. A shadow's soft edge and a ruled line, which can split a sheet
# into two bright regions, are not.
EDGE_STEP, EDGE_WIDE = 1.5, 5.0
EDGE_MIN_STEP = 10
EDGE_SHARPNESS = 0.6
# Sides are moved onto the sharp edge nearest them, at most this many pixels away.
SNAP = 6
# In a stream, the sheet is first looked for where it was in the previous
# frame: its sides are moved onto the sharp edges near them this many times
# (following a sheet that moved up to TRACK_STEPS x SNAP pixels of the
# 320-pixel copy), and at least TRACK_SUPPORT of its outline must be a sharp
# edge there.
TRACK_STEPS = 2
TRACK_SUPPORT = 0.7
# Snapped outlines whose corners are this close (pixels) are the same sheet.
SAME_SHEET = 3
# Sides are sampled every this many pixels of the 320-pixel copy.
SIDE_SPACING = 5
# A candidate's sides in view are sharp edges along at least this share of
# their length (a finger may cover some); candidates rank by it to this power.
MIN_EDGE_SUPPORT = 0.5
SUPPORT_WEIGHT = 4
# Every side in view (at least MIN_SIDE_POINTS sampled points of it) is a
# sharp edge along at least this share of its length: a region merged with a
# bright patch beside the sheet gets a side across the room. Measured on
# 1,200 simulated photos: 22 wrong sheets read became 9, 5 more read right.
MIN_SIDE_SUPPORT = 0.2
MIN_SIDE_POINTS = 4
# When no region outlines a sheet, its sides are looked for as straight
# lines (Hough): the LINE_VOTES-strong lines, up to MAX_LINES of them once
# those within LINE_APART pixels and LINE_TURN degrees of a stronger one are
# dropped (among the first MAX_HOUGH), make quadrilaterals with opposite
# sides within OPPOSITE_TURN degrees of parallel. Of those, sides checked
# against the edge map at LINE_SAMPLES points each, the MAX_LINE_QUADS
# largest are judged as regions are, and up to LINE_READS read. Their inside
# is one paper: at least MIN_ONE_PAPER of it within PAPER_CHROMA of its
# median chromaticity (a side along a line of the room takes in a strip of
# the room, whose edge then reads as a stroke). Measured on 1,200 simulated
# photos: 1,113 sheets read right without them, 1,142 with; of 100 blank
# sheets, 5 were taken for a sketch with MIN_ONE_PAPER 0.8, none with 0.95
# (1 sheet fewer read right). Last of all, the same search runs on faint
# edges (FAINT_LOW, FAINT_HIGH, sides stepping FAINT_MIN_STEP): a white sheet
# on a pale wall whose outline a patch of the room breaks. Measured on the
# 77 test photos of bench.webcam (seed 0) where no sketch was found before:
# 25 read, 23 of them classified right; of 60 blank sheets, 40 empty rooms
# and 40 faces, no more taken for a sketch (0, 1, 1).
LINE_VOTES = 30
LINE_APART = 8
LINE_TURN = 6
MAX_HOUGH = 300
MAX_LINES = 12
OPPOSITE_TURN = 45
LINE_SAMPLES = 16
MAX_LINE_QUADS = 20
LINE_READS = 3
MIN_ONE_PAPER = 0.95
PAPER_CHROMA = 0.02
# The inside is judged with dark lines up to about this wide (pixels of the
# 320-pixel copy) closed over: a doodle's own strokes in marker, wider than
# LINE_WIDTH, are not another paper. Measured on 1,600 simulated photos of
# doodles drawn with their own strokes: 1,526 sheets read right against
# 1,513 with LINE_WIDTH, 49 with no sketch read against 61 (38 against 49
# in pale rooms); of 60 empty rooms, 60 faces and 60 blank sheets, 0, 2 and
# 0 taken for a sketch either way.
ONE_PAPER_LINE_WIDTH = 9
# Last of all, when no search finds a sheet holding a sketch (white or pastel
# paper on a pale wall, its edge too faint along too many sides to bound a
# region or to be among the room's strongest lines), the sheet is outlined
# from the sketch outwards. The sketch: dark strokes, SKETCH_INK grey levels
# below a SKETCH_CLOSING-pixel grey closing, joined by a SKETCH_JOIN-pixel
# dilation into clusters SKETCH_SIDE of the frame's short side across; the
# MAX_SKETCHES with the most ink are tried. From a cluster's centre RAYS rays
# run out; each stops at the first faint edge (as `_edges` makes them) where
# the paper steps at least RAY_MIN_STEP levels between the medians of
# RAY_WINDOW pixels before and after it (a ruled line or noise does not move
# a median) and does so at once (over +-RAY_CLOSE pixels, EDGE_SHARPNESS of
# it: light changes slowly). Lines through at least MIN_SIDE_RAYS of those
# points, spread at least MIN_SIDE_SPAN pixels along them (within RAY_FIT
# pixels of a line through two points RAY_PAIRS rays apart), make
# quadrilaterals as straight sides do; the RAY_QUADS that hold the sketch and
# meet the most rays where those stopped (within RAY_ON pixels, at least
# MIN_RAY_SUPPORT of all rays) are judged as faint straight sides are.
# Measured on simulated photos of the dev doodles (bench.webcam's, every
# fourth of seed 0 and every eighth of seed 1): in pale rooms 13 of 241 and
# 7 of 131 with no sketch found against 25 and 13 (in other rooms 2 of 469
# against 4); of the 20 more read, 12 within 30 pixels of the true corners
# and 8 on a quadrilateral holding the sketch (part of the sheet, or the sheet
# and a strip of the room). Of 100 empty rooms, faces and blank sheets, as
# many taken for a sketch as before (2, 0, 3).
SKETCH_INK = 40
SKETCH_CLOSING = 13
SKETCH_JOIN = 9
SKETCH_SIDE = (0.06, 0.6)
MAX_SKETCHES = 4
RAYS = 180
RAY_DIRECTIONS = np.stack([np.cos(2 * np.pi * np.arange(RAYS) / RAYS),
                           np.sin(2 * np.pi * np.arange(RAYS) / RAYS)], axis=1)
RAY_MIN_STEP = 4
RAY_WINDOW = 7
RAY_CLOSE = 2
MIN_SIDE_RAYS = 4
MIN_SIDE_SPAN = 15
RAY_FIT = 1.5
RAY_PAIRS = np.arange(3, 11)
RAY_QUADS = 8
RAY_ON = 3
MIN_RAY_SUPPORT = 0.3
# The sheet found so holds the whole cluster, SKETCH_MARGIN pixels clear of
# its sides (measured: 8-9 pixels for sketches; 2 for a line of the room in a
# strip of it taken in with a blank sheet), and is at least RAY_PAPER_LEVEL as
# bright as the brightest things in view (0.76-0.99 for the sheets it finds in
# pale rooms; 0.57 for a patch of the room taken for a sheet).
SKETCH_MARGIN = 4
RAY_PAPER_LEVEL = 0.7
# When no search outlines a sheet at all (a white or pastel sheet on a pale
# wall whose edge shows nowhere), the paper around the sketch is read: the
# strongest cluster of dark strokes (`_ink_clusters`), with the clusters within
# SKETCH_GATHER of its size (a flower's stem a few pixels from its head), in a
# rectangle SKETCH_PAD of its longer side clear of it (a doodle sits at least
# 8 % of the sheet from its edges), turned by the straightest line through the
# outward rays' stops within SKETCH_TURN degrees of upright (the sheet's own
# sides where they show; sheets turn up to 30 degrees), else upright. It is
# read only if the cluster is at least SKETCH_MIN_SIDE of the frame's short
# side across, not one straight stroke (its minimal rectangle at least
# SKETCH_MIN_ASPECT as wide as long), with at most SKETCH_MAX_STRAIGHT of its
# ink within STRAIGHT_REACH pixels of a straight segment of its centre lines a
# quarter of its size long (a room's lines and rectangle outlines), and if a
# ring SKETCH_RING pixels wide around the rectangle (where in view) is paper:
# at least RAY_PAPER_LEVEL as bright as the brightest things in view, even
# (SKETCH_EVEN of it within SKETCH_PAPER_SPREAD levels of its median), one
# paper (SKETCH_ONE_PAPER, as MIN_ONE_PAPER measures it) and not skin: reddish
# (red > green > blue) with red - blue at least SKIN_SATURATION of red and
# red - green at least SKIN_RED of red - blue (skin tones 0.29-0.53 and
# 0.57-0.63; yellow paper 0.32 but 0.15; white, off-white and pastel paper not
# reddish or below 0.1). Measured on the 4,800 photos of bench.webcam (seed 0):
# of the 97 with no sketch found otherwise, 43 read, 42 of them the doodle
# (precision > 0.8 and recall > 0.6 against its true ink, as
# tests/test_webcam.py's `overlap`), 1 part of it. Of 100 empty rooms, faces
# and blank sheets, as many taken for a sketch as before (0, 2, 0); of 400
# each, 6 empty rooms against 4 (two rectangle outlines on a pale wall,
# straight share 0.63 and 0.79), 4 faces and 15 blank sheets as before. A
# face's mouth (0.21 of the short side) is refused by its size and by the skin
# around it, each alone (26 faces of 100 taken for a sketch without both); the
# straight share of the sketches read is at most 0.76, of the room's outlines
# taken for one without that test 0.83-1.0 (2 empty rooms of 100). Turned by
# the rays, the rectangle is within 6 degrees of the sheet's turn at the median
# (17 upright). bench.webcam --per-class 300 --seed 0 --head-seeds 5, against
# the same run without it: no sketch found 1.1 % against 2.0 %; photos ->
# photos 0.890 against 0.887, drawings -> photos 0.868 against 0.862 (with
# paper views 0.895 against 0.889 and 0.893 against 0.887), the means of five
# heads (one head alone differs by up to a point either way).
STRAIGHT_REACH = 5
SKETCH_GATHER = 0.3
SKETCH_PAD = 0.08
SKETCH_TURN = 35
SKETCH_MIN_SIDE = 0.23
SKETCH_MAX_STRAIGHT = 0.8
SKETCH_MIN_ASPECT = 0.2
SKETCH_RING = 6
SKETCH_EVEN = 0.7
SKETCH_PAPER_SPREAD = 20
SKETCH_ONE_PAPER = 0.85
SKIN_SATURATION = 0.2
SKIN_RED = 0.3
# At least this share of a sheet's outline is in view.
MIN_VISIBLE_SIDES = 0.5
# Canny's hysteresis thresholds for the sheet's outline.
EDGE_LOW, EDGE_HIGH = 20, 50
# When no sheet is found so, one more search looks for faint outlines (white
# or pastel paper on a pale wall steps 4-7 grey levels at its edge): edges of
# a copy smoothed FAINT_BLUR pixels wide, with these thresholds, and sides
# stepping at least FAINT_MIN_STEP levels. Measured on 640 simulated photos:
# 13 more sheets read (584 to 597), no more empty rooms, faces or blank
# sheets taken for a sketch (40 of each).
FAINT_LOW, FAINT_HIGH = 8, 20
FAINT_BLUR = 7
FAINT_MIN_STEP = 5
# Dark lines up to about this wide (pixels of the 320-pixel copy) are closed over.
LINE_WIDTH = 5
# Edge maps are thickened to these widths to close gaps in an outline.
EDGE_GAPS = (3, 5)
# The rectified sheet's long side (pixels): the backbone sees 224.
SHEET_SIDE = 320
# Dropped from each side of the rectified sheet: its edge and the room just past it.
BORDER = 0.03
# After dividing by the paper's light, ink is below INK_RATIO (a seed), and
# so are the pixels connected to a seed below a paler level: PALE_DEPTH of the
# seed's depth below the paper. A pale pencil sets the seed level to SEED_DEPTH
# of its darkest strokes' depth (the sheet's DARKEST_PERCENTILE, in percent),
# up to MAX_SEED_RATIO; paper noise stays above MAX_PALE_RATIO.
INK_RATIO = 0.82
SEED_DEPTH = 0.6
DARKEST_PERCENTILE = 0.3
MAX_SEED_RATIO = 0.9
PALE_DEPTH = 0.5
MAX_PALE_RATIO = 0.88
# Ink specks smaller than this share of the sheet are noise.
MIN_SPECK = 0.0002
# Lined paper: a line crosses LINE_SHARE of the sheet's width; a
# stroke crossing it is inked LINE_REACH rows above and below too.
LINE_SHARE = 0.5
LINE_REACH = 3
# A ruled line spans at most this share of the sheet's height (it may sit a
# little askew in the warped sheet).
LINE_HEIGHT = 0.04
# A sketch covers this range of the sheet's area. Its strokes may be as
# broad as a marker's and may fill a shape: no share of them has to be thin.
# Measured on 320 simulated photos of doodles drawn with their own strokes
# (bench/webcam_photos.py): asking 60 % of the ink to be thinner than
# THIN_STROKE of the sheet's short side left 77 with no sketch read, 22
# without that test, 12 with PAPER_CLEARANCE as well (below); of the same
# doodles traced with a thin pen, 7 each way; of 40 blank sheets, 40 empty
# rooms and 40 faces, 0, 0 and 1 taken for a sketch each way.
INK_AREA = (0.002, 0.3)
# A finger reaching over the sheet's edge is wider than this share of the
# sheet's short side (a broad marker, 6 mm on A4, is 3 %).
THIN_STROKE = 0.06
# Strokes are widened to this share of the sketch's longer side, and drawn
# on a canvas CANVAS_SIDE pixels across the sketch (a Quick, Draw! doodle's is
# 28), then scaled up smoothly, as the drawings the classifier learns from
# are. Measured on simulated photos (bench.webcam_oracle): their strokes are
# then about as wide at 224 pixels as the doodles' (10.6 and 10.1 pixels), and
# the accuracy is flat from 0.04 to 0.07.
STROKE_WIDTH = 0.04
CANVAS_SIDE = 28
# Strokes broader than STROKE_WIDTH (a marker, a doodle's own strokes drawn as
# large as the sheet) are thinned about their centre lines to this share of
# the sketch's longer side, and not widened again: at 224 pixels they are
# then as wide as the doodles' (bench.webcam_oracle --per-class 300, the
# doodles' own strokes: 10.3 against 10.1 pixels, 16.7 unthinned; drawings ->
# photos 0.883 against 0.850, photos -> photos 0.913 against 0.909; thinned
# to STROKE_WIDTH instead, 13.0 pixels, 0.880 and 0.905).
BROAD_STROKE_WIDTH = 0.024
# Paper is even once its light is divided out; a textured or patterned region
# (the room) is not: the spread of the pixels neither ink nor within
# PAPER_CLEARANCE pixels of it stays under this (a finger's soft shadow and
# ruled lines spread the paper up to about 0.045). A broad stroke's soft edge
# is not paper: counted as paper, it spread doodles in marker past 0.05.
MAX_PAPER_SPREAD = 0.05
PAPER_CLEARANCE = 4
# The ink's depth below the paper (its 10th percentile) is at least this many
# times the paper's noise (robust spread of the non-ink pixels); measured on
# simulated photos: sketches 14 and more, a textured region of the room 8.5.
MIN_INK_CONTRAST = 11

# The corner (or side) after and before each of a quadrilateral's four.
NEXT, PREVIOUS = np.array([1, 2, 3, 0]), np.array([3, 0, 1, 2])

Sketch = collections.namedtuple("Sketch", "grey corners transform score")
Sketch.__doc__ = """grey: the clean sketch (uint8, black on white). corners: the sheet's
corners in the photo, clockwise from top-left, as float32 (4, 2); when no
search outlined the sheet and the paper around the sketch was read instead
(`_around_sketch`), the corners of that rectangle, around the sketch and
inside the sheet. transform: the homography from the photo to `grey`. score:
the sheet's share of the frame x its rectangularity ** RECTANGULARITY_WEIGHT
x the share of its outline that is a sharp edge ** SUPPORT_WEIGHT (the
rectangle's share of the frame when read around the sketch)."""


class Track:
    """Where the sheet was in the last frame of one stream (one user's
    webcam): the hint `find_sketch` looks at first in the next frame. It holds
    one quadrilateral and the frame's size, whatever the stream's length;
    each stream owns its own and nothing is shared between them."""
    __slots__ = ("corners", "shape")

    def __init__(self):
        self.corners = self.shape = None

    def near(self, shape):
        """The corners to look near in a frame of this shape, or None."""
        return self.corners if shape == self.shape else None

    def follow(self, shape, sketch):
        """Remember where the sketch was found in a frame (None: nowhere)."""
        self.shape = shape
        self.corners = None if sketch is None else sketch.corners


def find_sketch(rgb, near=None):
    """RGB uint8 array -> Sketch, or None when no sheet with a sketch is in view.

    `near`: the sheet's corners in the previous frame of a stream (as
    Sketch.corners). The sheet is looked for there first, by moving those
    sides onto the sharp edges near them (`_tracked`); the whole frame is
    searched only when no sheet holding a sketch is there. A sheet held in
    view is then read as the same sheet frame after frame, for a fraction of
    the search's cost.

    Pure: the same photo and hint give the same answer, and the array is not
    written to.
    """
    rgb = np.asarray(rgb)
    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    view = _view(small)
    # Faint outlines are looked for only when no sheet with a sketch is found otherwise.
    sheets = itertools.chain(_sheets(view), _sheets(view, faint=True), _line_sheets(view),
                             _line_sheets(view, faint=True), _outward_sheets(view),
                             _around_sketch(view))
    if near is not None:
        sheets = itertools.chain(_tracked(view, np.asarray(near, np.float32) * scale), sheets)
    grey = None
    for quad, score in sheets:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grey is None else grey
        corners = (quad / scale).astype(np.float32)
        sketch, transform = _rectified(grey, corners)
        if sketch is not None:
            return Sketch(sketch, corners, transform, score)
    return None


_View = collections.namedtuple("_View", "paper darkest colour share bright made")


def _view(small):
    """What the search looks at in the 320-pixel copy: `paper` (thin dark lines
    closed over), its `darkest` channel and that channel's cumulative
    histogram (`share`, as shares of its pixels) and 95th percentile
    (`bright`), a lightly smoothed `colour` copy for the sheet's edges, and
    `made`, what is made at most once a frame when a search first asks for
    it (`_once`: the edge maps of `_edges`, the dark strokes of
    `_ink_clusters`, the paper of `_broad_closed` and `_ray_ground`)."""
    # Thin dark lines on the paper (strokes, ruled lines) would split the sheet
    # into strips: a closing as wide as them paints them over with paper.
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE,
                             cv2.getStructuringElement(cv2.MORPH_RECT, (LINE_WIDTH, LINE_WIDTH)))
    darkest = cv2.min(cv2.min(paper[..., 0], paper[..., 1]), paper[..., 2])
    share = np.cumsum(np.bincount(darkest.ravel(), minlength=256)) / darkest.size
    return _View(paper, darkest, cv2.GaussianBlur(small, (3, 3), 0), share,
                 int(np.searchsorted(share, 0.95)), {})


def _once(view, key, make):
    """view.made[key], made by `make()` the first time a frame asks for it."""
    if key not in view.made:
        view.made[key] = make()
    return view.made[key]


def _edges(view, faint=False):
    """Canny's edges of the view's `paper` (`faint`: of faint outlines, on a
    copy smoothed FAINT_BLUR pixels wide). Made once a frame: the searches
    for regions and for straight sides look at the same edges."""
    return _once(view, ("edges", faint), lambda: cv2.Canny(
        cv2.GaussianBlur(view.paper, (FAINT_BLUR, FAINT_BLUR), 0), FAINT_LOW, FAINT_HIGH)
        if faint else cv2.Canny(cv2.GaussianBlur(view.paper, (5, 5), 0), EDGE_LOW, EDGE_HIGH))


def _broad_closed(view):
    """The view's paper with dark lines up to ONE_PAPER_LINE_WIDTH wide
    closed over, broad strokes included: what `_one_paper` judges. Made once
    a frame for the straight-sides, outward and around-the-sketch searches."""
    return _once(view, "broad closed", lambda: cv2.morphologyEx(
        view.paper, cv2.MORPH_CLOSE, cv2.getStructuringElement(
            cv2.MORPH_RECT, (ONE_PAPER_LINE_WIDTH, ONE_PAPER_LINE_WIDTH))))


def _ray_ground(view):
    """(paper, edges) that rays cast from a sketch stop on (`_ray_stops`):
    the paper with thin lines closed over (dark ones) and opened (bright: a
    ruled line may be lighter than the paper in one channel), and the faint
    edges thickened by a pixel. Made once a frame."""
    return _once(view, "ray ground", lambda: (
        cv2.morphologyEx(view.paper, cv2.MORPH_OPEN, np.ones((LINE_WIDTH, LINE_WIDTH), np.uint8)),
        cv2.dilate(_edges(view, True), np.ones((3, 3), np.uint8))))


def _tracked(view, quad):
    """The sheet near `quad` (corners in the 320-pixel copy), as (corners,
    score) once or not at all: its sides moved onto the sharp edges near
    them (up to TRACK_STEPS times, so a sheet that moved up to TRACK_STEPS x
    SNAP pixels is followed) until it is judged as a found sheet is, with at
    least TRACK_SUPPORT of its outline a sharp edge. Its score counts its
    rectangularity as perfect: it was measured when the sheet was found."""
    if quad.shape != (4, 2) or not np.isfinite(quad).all():
        return
    # One step at a time: a side that already lies on the sheet's edge is not
    # pulled on to another edge a few pixels further.
    for _ in range(TRACK_STEPS):
        quad = _snapped(view.colour, quad)
        _, _, support = _judged(view.colour, view.darkest, view.bright, quad)
        if support is not None and support >= TRACK_SUPPORT:
            break
    else:
        return
    height, width = view.darkest.shape
    frame = _frame(height, width)
    visible, _ = cv2.intersectConvexConvex(quad, frame)
    if visible < MIN_SHEET_AREA * width * height:
        return
    yield quad, min(visible / (width * height), 1.0) * support ** SUPPORT_WEIGHT


def _sheets(view, faint=False):
    """(corners, score) of each sheet in view, best score first.

    Regions come from several masks of the 320-pixel copy (`_regions`); each
    is then snapped onto the sheet's sides and judged (`_judged`), which costs
    far more. A region's score can only fall when judged (its edge support is
    at most 1), so regions are judged best bound first, and a judged sheet is
    handed over as soon as no region left could beat it: the first sheet
    usually ends the search. `faint`: regions outlined by faint edges only,
    judged by sides that step at least FAINT_MIN_STEP levels."""
    colour, darkest, bright = view.colour, view.darkest, view.bright
    min_step = FAINT_MIN_STEP if faint else EDGE_MIN_STEP
    ready, judged, kept = [], {}, []
    for bound, quad, min_contrast in _regions(view, faint):
        while ready and ready[0][0] <= -bound:
            _, _, sheet, score = heapq.heappop(ready)
            yield sheet, score
        sheet = _snapped(colour, quad, min_step)
        # Snapped, outlines a few pixels apart are one sheet, judged once.
        if any(np.abs(sheet - other).max() <= SAME_SHEET for other in kept):
            continue
        key = tuple(np.rint(sheet).astype(int).ravel())
        if key not in judged:
            judged[key] = _judged(colour, darkest, bright, sheet, min_step)
        level, around, support = judged[key]
        if level - around < min_contrast or support is None:
            continue
        kept.append(sheet)
        score = bound * support ** SUPPORT_WEIGHT
        heapq.heappush(ready, (-score, len(kept), sheet, score))
    while ready:
        _, _, sheet, score = heapq.heappop(ready)
        yield sheet, score


def _line_sheets(view, faint=False):
    """(corners, score) of up to LINE_READS quadrilaterals whose four sides
    are straight edges in the frame (`faint`: faint edges), best score first. A sheet whose outline
    has gaps (a side as pale as the wall behind it, a shadow across it, a
    corner out of frame) bounds no region, but the sides in view are still
    long straight edges. The MAX_LINE_QUADS quadrilaterals ranked first by
    a rough edge support are judged as `_sheets` judges regions."""
    colour, darkest = view.colour, view.darkest
    height, width = darkest.shape
    min_step = FAINT_MIN_STEP if faint else EDGE_MIN_STEP
    edges = _edges(view, faint)
    found = cv2.HoughLines(edges, 1, np.pi / 180, LINE_VOTES)
    if found is None:
        return
    # Lines come most voted first; near copies of a kept line are dropped.
    lines = []
    for rho, theta in found[:MAX_HOUGH, 0]:
        if all(abs(rho - r) > LINE_APART or _turn(theta, t) > LINE_TURN for r, t in lines):
            lines.append((rho, theta))
            if len(lines) == MAX_LINES:
                break
    quads = _line_quads(np.array(lines, np.float64), cv2.dilate(edges, np.ones((3, 3), np.uint8)))
    frame = _frame(height, width)
    area = width * height
    supports = _edge_supports(colour, np.array(quads, np.float32).reshape(-1, 4, 2), min_step)
    passing, shares = [], []
    for quad, support in zip(quads, supports):
        visible, _ = cv2.intersectConvexConvex(quad, frame)
        if visible >= MIN_SHEET_AREA * area and support >= MIN_EDGE_SUPPORT:
            passing.append(quad)
            shares.append(min(visible / area, 1.0))
    judged = []
    sheets = _snapped_all(colour, np.array(passing, np.float32).reshape(-1, 4, 2), min_step)
    weighed = _judged_all(colour, darkest, view.bright, sheets, min_step)
    for sheet, share, (_, _, support) in zip(sheets, shares, weighed):
        if support is None or any(np.abs(sheet - other).max() <= SAME_SHEET
                                  for other, _ in judged):
            continue
        judged.append((sheet, share * support ** SUPPORT_WEIGHT))
    yield from _one_paper_sheets(view, judged)


def _one_paper_sheets(view, judged):
    """The best LINE_READS of the judged (corners, score) whose inside is one
    paper (MIN_ONE_PAPER), best score first."""
    if not judged:
        return
    judged = sorted(judged, key=lambda sheet: -sheet[1])
    paper = _broad_closed(view)
    # The costliest check last, on the best few.
    yield from itertools.islice(((sheet, score) for sheet, score in judged
                                 if _one_paper(paper, sheet) >= MIN_ONE_PAPER), LINE_READS)


def _outward_sheets(view):
    """(corners, score) of up to LINE_READS sheets outlined from a sketch
    outwards: rays cast from a cluster of dark strokes stop at the first
    sharp step of the paper, and the quadrilateral of straight lines through
    those points that the most rays stop on is judged as faint straight
    sides are (see SKETCH_INK)."""
    colour = view.colour
    height, width = view.darkest.shape
    labels, clusters, _ = _ink_clusters(view)
    if not clusters:
        return
    flat, edges = _ray_ground(view)
    frame = _frame(height, width)
    judged = []
    for label, (x, y, w, h) in clusters:
        centre = np.array([x + w / 2, y + h / 2])
        sketch = labels == label
        hull = cv2.convexHull(cv2.findNonZero(sketch.astype(np.uint8))).reshape(-1, 2)
        rays, reach = _ray_stops(flat, edges, sketch, centre)
        points = centre + RAY_DIRECTIONS[rays] * reach[:, None]
        corners, _ = _quads_of_lines(np.array(_lines_through(points), np.float64),
                                     (height, width))
        if not len(corners):
            continue
        met = (np.abs(_exits(corners, centre)[:, rays] - reach) <= RAY_ON).sum(axis=1) / RAYS
        best = [index for index in np.argsort(-met, kind="stable")[:RAY_QUADS]
                if met[index] >= MIN_RAY_SUPPORT]
        quads = [_clockwise(corners[index].astype(np.float32)) for index in best]
        sheets = _snapped_all(colour, np.array(quads, np.float32).reshape(-1, 4, 2),
                              FAINT_MIN_STEP)
        weighed = _judged_all(colour, view.darkest, view.bright, sheets, FAINT_MIN_STEP)
        for sheet, (level, _, support) in zip(sheets, weighed):
            if any(np.abs(sheet - other).max() <= SAME_SHEET for other, _ in judged):
                continue
            # The sketch lies on the sheet, and the sheet is among the
            # brightest things in view.
            if support is None or level < RAY_PAPER_LEVEL * view.bright or \
                    min(cv2.pointPolygonTest(sheet, (float(px), float(py)), True)
                        for px, py in hull) < SKETCH_MARGIN:
                continue
            visible, _ = cv2.intersectConvexConvex(sheet, frame)
            judged.append((sheet, min(visible / (width * height), 1.0) * support ** SUPPORT_WEIGHT))
    yield from _one_paper_sheets(view, judged)


def _around_sketch(view):
    """(corners, score) of the paper around the sketch, once or not at all:
    the last resort when no search outlines a sheet. The strongest cluster
    of dark strokes (with the clusters near it) is read in a rectangle a
    margin clear of it, turned as the sheet's sides that the outward rays
    stop on run (else upright), if it is large enough for a sketch, not
    mostly straight lines (the room's), and the paper in a ring around the
    rectangle is bright, even, one paper and not skin (see SKETCH_GATHER).
    The corners are the rectangle's, not the sheet's (whose edges were not
    seen); the score is its share of the frame."""
    darkest = view.darkest
    height, width = darkest.shape
    labels, clusters, ink = _ink_clusters(view)
    if not clusters:
        return
    label, (x, y, w, h) = clusters[0]
    if max(w, h) < SKETCH_MIN_SIDE * min(height, width):
        return
    cluster = labels == label
    # One straight stroke (a line of the room) is narrow along its own direction.
    _, sides, _ = cv2.minAreaRect(cv2.findNonZero(cluster.astype(np.uint8)))
    if min(sides) < SKETCH_MIN_ASPECT * max(sides) \
            or _straight_share(ink & cluster, max(w, h)) > SKETCH_MAX_STRAIGHT:
        return
    quad, ring = _sketch_box(view, labels, label, np.array([x + w / 2, y + h / 2]))
    frame = _frame(height, width)
    # The rectangle read is in view; the ring around it where it is in view.
    if (quad < 0).any() or (quad > frame[2]).any():
        return
    _, ring = cv2.intersectConvexConvex(ring, frame)
    if ring is None or not _even_paper_around(view, quad, ring.reshape(-1, 2)):
        return
    yield _clockwise(quad), cv2.contourArea(quad) / (width * height)


def _sketch_box(view, labels, label, centre):
    """(the rectangle to read, the ring's outer rectangle) around a cluster
    of the labelled ink (`_ink_clusters`) and the clusters near it, turned
    as `_sheet_turn` finds the sheet; float32 (4, 2) each."""
    cluster = (labels == label).astype(np.uint8)
    side = max(cv2.boundingRect(cluster)[2:])
    reach = 2 * int(SKETCH_GATHER * side / 2) + 1
    near = np.unique(labels[cv2.dilate(cluster, cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (reach, reach))) > 0])
    sketch = np.isin(labels, near[near > 0]).astype(np.uint8)
    points = cv2.findNonZero(sketch).reshape(-1, 2).astype(np.float64)
    angle = _sheet_turn(view, sketch, centre)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    upright = points @ rotation
    low, high = upright.min(axis=0), upright.max(axis=0)
    pad = SKETCH_PAD * (high - low).max()
    box = np.array([[low[0], low[1]], [high[0], low[1]], [high[0], high[1]], [low[0], high[1]]])
    offsets = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    return ((box + pad * offsets) @ rotation.T).astype(np.float32), \
        ((box + (pad + SKETCH_RING) * offsets) @ rotation.T).astype(np.float32)


def _straight_share(ink, side):
    """The share of a cluster's dark strokes (0/1 uint8, `_ink_clusters`)
    within STRAIGHT_REACH of a straight segment of their centre lines
    (Hough's) a quarter of the cluster's size (`side`, its longer side) long
    or longer: a room's lines and rectangle outlines are straight, a
    sketch's strokes mostly not."""
    if not ink.any():
        return 0.0
    found = cv2.HoughLinesP(cv2.ximgproc.thinning(ink * 255), 1, np.pi / 180, 10,
                            minLineLength=0.25 * side, maxLineGap=2)
    if found is None:
        return 0.0
    on = np.zeros_like(ink)
    for x1, y1, x2, y2 in found.reshape(-1, 4):
        cv2.line(on, (int(x1), int(y1)), (int(x2), int(y2)), 1, STRAIGHT_REACH)
    return float((on & ink).sum() / int(ink.sum()))


def _even_paper_around(view, quad, ring):
    """Whether the ring between the rectangle `quad` and the polygon `ring`
    around it is one paper (with broad strokes closed over), bright and even."""
    darkest = view.darkest
    inside = np.zeros(darkest.shape, np.uint8)
    cv2.fillConvexPoly(inside, np.rint(ring).astype(np.int32), 1)
    cv2.fillConvexPoly(inside, np.rint(quad).astype(np.int32), 0)
    around = darkest[inside > 0].astype(np.float32)
    if not len(around):
        return False
    level = float(np.median(around))
    even = float(np.mean(np.abs(around - level) <= SKETCH_PAPER_SPREAD))
    if level < RAY_PAPER_LEVEL * view.bright or even < SKETCH_EVEN:
        return False
    # Skin is not paper: reddish (red > green > blue), saturated, its green
    # well below its red (yellow paper's is close to it).
    red, green, blue = np.median(view.paper[inside > 0], axis=0).astype(np.float64)
    if red > green > blue and red - blue >= SKIN_SATURATION * red \
            and red - green >= SKIN_RED * (red - blue):
        return False
    return _one_paper(_broad_closed(view), ring) >= SKETCH_ONE_PAPER


def _sheet_turn(view, sketch, centre):
    """The sheet's turn in the image (radians, within SKETCH_TURN of upright)
    from the straightest line through the outward rays' stops, or 0."""
    flat, edges = _ray_ground(view)
    rays, reach = _ray_stops(flat, edges, sketch.astype(bool), centre)
    lines = _lines_through(centre + RAY_DIRECTIONS[rays] * reach[:, None])
    for _, theta in lines:
        turn = (theta + np.pi / 4) % (np.pi / 2) - np.pi / 4
        if abs(turn) <= np.radians(SKETCH_TURN):
            return turn
    return 0.0


def _ink_clusters(view):
    """(labels, [(label, box)], the dark strokes (0/1 uint8)): the joined
    clusters of dark strokes in a `_view` that could be a sketch, most ink
    first, at most MAX_SKETCHES; box: x, y, width, height. Made once a
    frame: the outward search and the reading around the sketch both ask."""
    return _once(view, "sketches", lambda: _clusters_of(view.colour))


def _clusters_of(colour):
    height, width = colour.shape[:2]
    darkest = cv2.min(cv2.min(colour[..., 0], colour[..., 1]), colour[..., 2])
    closed = cv2.morphologyEx(darkest, cv2.MORPH_CLOSE, cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (SKETCH_CLOSING, SKETCH_CLOSING)))
    ink = (closed.astype(np.int16) - darkest >= SKETCH_INK).astype(np.uint8)
    joined = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                       (SKETCH_JOIN, SKETCH_JOIN)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    amount = np.bincount(labels[ink > 0], minlength=count)
    amount[0] = 0
    side = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    amount[(side < SKETCH_SIDE[0] * min(height, width))
           | (side > SKETCH_SIDE[1] * min(height, width))] = 0
    chosen = [label for label in np.argsort(-amount, kind="stable")[:MAX_SKETCHES] if amount[label]]
    return labels, [(label, stats[label, :4]) for label in chosen], ink


def _ray_stops(paper, edges, sketch, centre):
    """(rays, distances): where each ray (RAY_DIRECTIONS) cast from `centre`
    first meets a sharp step of the paper on an edge, once past the `sketch`
    (a mask) and far enough for a window of paper before the step; rays that
    meet none are left out."""
    height, width = sketch.shape
    reach = np.arange(int(np.hypot(height, width)), dtype=np.float32)
    x = np.rint(np.float32(centre[0]) + RAY_DIRECTIONS[:, 0:1] * reach).astype(np.int32)
    y = np.rint(np.float32(centre[1]) + RAY_DIRECTIONS[:, 1:2] * reach).astype(np.int32)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    np.clip(x, 0, width - 1, out=x)
    np.clip(y, 0, height - 1, out=y)
    # One flat index into the pixels, as `_profile` does.
    flat = y * width + x
    own = sketch.ravel()[flat] & inside
    # Past the sketch's last pixel on the ray, by a window and a stroke's soft edge.
    past = np.where(own.any(axis=1), reach[-1] - np.argmax(own[:, ::-1], axis=1), 0)
    candidate = inside & (edges.ravel()[flat] > 0) & (reach >= past[:, None] + RAY_WINDOW + 6)
    candidate[:, -RAY_WINDOW - 1:] = False
    ray, at = np.nonzero(candidate)
    if not len(ray):
        return ray, np.zeros(0)
    pixels = paper.reshape(height * width, -1)
    offsets = np.arange(1, RAY_WINDOW + 1)

    def values(shift):
        return pixels.take(flat[ray[:, None], at[:, None] + shift], axis=0).astype(np.int16)

    step = np.abs(np.median(values(offsets), axis=1)
                  - np.median(values(-offsets), axis=1)).max(axis=1)
    close = np.abs(values(np.array([RAY_CLOSE]))[:, 0]
                   - values(np.array([-RAY_CLOSE]))[:, 0]).max(axis=1)
    sharp = (step >= RAY_MIN_STEP) & (close >= EDGE_SHARPNESS * step)
    # np.nonzero lists the points ray by ray, outwards: the first of each ray.
    ray, first = np.unique(ray[sharp], return_index=True)
    return ray, at[sharp][first].astype(np.float64)


def _lines_through(points):
    """Up to MAX_LINES lines (rho, theta) through at least MIN_SIDE_RAYS of
    the points (in the order of the rays) spread MIN_SIDE_SPAN along them;
    greedily, each taking its points, so that no two lines share a side."""
    count = len(points)
    if count < MIN_SIDE_RAYS:
        return []
    # Each line through two points a few rays apart: along a side, not a
    # chord between two sides.
    first = np.repeat(np.arange(count), len(RAY_PAIRS))
    direction = points[(first + np.tile(RAY_PAIRS, count)) % count] - points[first]
    keep = np.linalg.norm(direction, axis=1) > 8
    first, direction = first[keep], direction[keep]
    theta = np.arctan2(direction[:, 0], -direction[:, 1]) % np.pi
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    rho = points[first, 0] * cos[:, 0] + points[first, 1] * sin[:, 0]
    near = np.abs(points[:, 0] * cos + points[:, 1] * sin - rho[:, None]) <= RAY_FIT
    along = points[:, 1] * cos - points[:, 0] * sin
    free = np.ones(count, bool)
    lines = []
    while len(lines) < MAX_LINES:
        # Only lines through enough free points can take another side.
        alive = np.flatnonzero((near & free).sum(axis=1) >= MIN_SIDE_RAYS)
        near, along, rho, theta = near[alive], along[alive], rho[alive], theta[alive]
        if not len(alive):
            break
        members = near & free
        span = np.where(members, along, -np.inf).max(axis=1) \
            - np.where(members, along, np.inf).min(axis=1)
        votes = members.sum(axis=1) * (span >= MIN_SIDE_SPAN)
        best = int(np.argmax(votes))
        if votes[best] < MIN_SIDE_RAYS:
            break
        lines.append((rho[best], theta[best]))
        free &= ~near[best]
    return lines


def _exits(corners, centre):
    """How far each ray (RAY_DIRECTIONS) from `centre` runs in each convex
    quadrilateral (n, 4, 2) before it leaves: (n, RAYS); infinite for a
    quadrilateral that does not hold the centre."""
    start = (corners - centre)[:, :, None, :]
    side = (np.roll(corners, -1, axis=1) - corners)[:, :, None, :]
    direction = RAY_DIRECTIONS[None, None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        across = _cross(direction, side)
        distance = _cross(start, side) / across
        where = _cross(start, direction) / across
    distance = np.where((distance > 0) & (where >= 0) & (where <= 1), distance, np.inf)
    exits = distance.min(axis=1)
    turns = _cross(start, side)[:, :, 0]
    exits[~((turns > 0).all(axis=1) | (turns < 0).all(axis=1))] = np.inf
    return exits


def _cross(u, v):
    """The 2D cross products of vectors along the last axis."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _quads_of_lines(lines, shape):
    """(corners (n, 4, 2), share of the frame) of the convex quadrilaterals
    four of the lines ((rho, theta) rows) bound, with opposite sides within
    OPPOSITE_TURN degrees of parallel and corners within CORNER_ANGLES."""
    height, width = shape
    count = len(lines)
    if count < 4:
        return np.zeros((0, 4, 2)), np.zeros(0)
    cos, sin = np.cos(lines[:, 1]), np.sin(lines[:, 1])
    turn = np.abs(lines[:, 1][:, None] - lines[:, 1][None, :]) % np.pi
    turn = np.degrees(np.minimum(turn, np.pi - turn))
    # Where each two lines cross: x cos + y sin = rho for both.
    det = cos[:, None] * sin[None, :] - sin[:, None] * cos[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (lines[:, 0][:, None] * sin[None, :] - sin[:, None] * lines[:, 0][None, :]) / det
        y = (cos[:, None] * lines[:, 0][None, :] - lines[:, 0][:, None] * cos[None, :]) / det
    i, j = np.triu_indices(count, 1)
    opposite = turn[i, j] <= OPPOSITE_TURN
    i, j = i[opposite], j[opposite]
    first, second = np.triu_indices(len(i), 1)
    a, b, c, d = i[first], j[first], i[second], j[second]
    # Neighbouring sides meet at a corner within CORNER_ANGLES.
    least = 180 - CORNER_ANGLES[1]
    ok = (a != c) & (a != d) & (b != c) & (b != d) & (turn[a, c] >= least) \
        & (turn[a, d] >= least) & (turn[b, c] >= least) & (turn[b, d] >= least)
    a, b, c, d = a[ok], b[ok], c[ok], d[ok]
    # Sides a, c, b, d in turn: corners a-c, c-b, b-d, d-a.
    corners = np.stack([np.stack([x[p, q], y[p, q]], axis=-1)
                        for p, q in ((a, c), (c, b), (b, d), (d, a))], axis=1)
    near = np.isfinite(corners).all(axis=(1, 2)) & \
        (np.abs(corners - [width / 2, height / 2]) <= [width, height]).all(axis=(1, 2))
    corners = corners[near]
    sides = np.roll(corners, -1, axis=1) - corners
    turns = sides[:, :, 0] * np.roll(sides, -1, axis=1)[:, :, 1] \
        - sides[:, :, 1] * np.roll(sides, -1, axis=1)[:, :, 0]
    convex = (turns > 0).all(axis=1) | (turns < 0).all(axis=1)
    corners = corners[convex]
    shoelace = 0.5 * np.abs((corners[:, :, 0] * np.roll(corners, -1, axis=1)[:, :, 1]
                             - corners[:, :, 1] * np.roll(corners, -1, axis=1)[:, :, 0]).sum(axis=1))
    share = shoelace / (width * height)
    # Corner angles, whichever way round the corners go.
    before, after = np.roll(corners, 1, axis=1) - corners, np.roll(corners, -1, axis=1) - corners
    cosine = (before * after).sum(axis=2) / np.maximum(
        np.linalg.norm(before, axis=2) * np.linalg.norm(after, axis=2), 1e-6)
    angles = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    fit = (share >= MIN_SHEET_AREA) & \
        ((angles >= CORNER_ANGLES[0]) & (angles <= CORNER_ANGLES[1])).all(axis=1)
    corners, share = corners[fit], share[fit]
    return corners, share


def _line_quads(lines, edges):
    """The corners of up to MAX_LINE_QUADS convex quadrilaterals four of the lines
    ((rho, theta) rows) bound, with opposite sides within OPPOSITE_TURN
    degrees of parallel, corners within CORNER_ANGLES, and sides in view
    along the edge map `edges` (as `_edge_support` asks, roughly); best
    first, by area and edge support as sheets are ranked."""
    height, width = edges.shape
    corners, share = _quads_of_lines(lines, edges.shape)
    # Each side sampled at LINE_SAMPLES points: the share of those in view on an edge.
    t = (0.05 + 0.9 * np.arange(LINE_SAMPLES) / (LINE_SAMPLES - 1))[None, None, :, None]
    points = corners[:, :, None, :] + (np.roll(corners, -1, axis=1) - corners)[:, :, None, :] * t
    px, py = np.rint(points[..., 0]).astype(int), np.rint(points[..., 1]).astype(int)
    inside = (px > 0) & (px < width - 1) & (py > 0) & (py < height - 1)
    on = inside & (edges[np.clip(py, 0, height - 1), np.clip(px, 0, width - 1)] > 0)
    seen, along = inside.sum(axis=2), on.sum(axis=2)
    sides = ((along >= MIN_SIDE_SUPPORT * seen) | (seen < MIN_SIDE_POINTS)).all(axis=1)
    enough = (seen.sum(axis=1) >= MIN_VISIBLE_SIDES * 4 * LINE_SAMPLES) & \
        (along.sum(axis=1) >= MIN_EDGE_SUPPORT * seen.sum(axis=1))
    keep = sides & enough
    # Ranked as sheets are, with this rough edge support: the largest
    # quadrilaterals are mostly the room's lines, few of them along edges.
    rank = np.minimum(share, 1.0) * (along.sum(axis=1) / np.maximum(seen.sum(axis=1), 1)) \
        ** SUPPORT_WEIGHT
    corners, rank = corners[keep].astype(np.float32), rank[keep]
    return [_clockwise(corners[index]) for index in np.argsort(-rank, kind="stable")[:MAX_LINE_QUADS]]


def _one_paper(colour, quad):
    """The share of a quadrilateral's inside that is of one colour (hue and
    saturation, not brightness: a shadow may darken part of the sheet): near
    the median chromaticity of it."""
    inside = np.zeros(colour.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, np.rint(quad).astype(np.int32), 1)
    # Every other pixel each way: a share needs no more.
    pixels = colour[::2, ::2][inside[::2, ::2] > 0].astype(np.float32)
    if not len(pixels):
        return 0.0
    chroma = pixels / np.maximum(pixels.sum(axis=1, keepdims=True), 1)
    far = np.abs(chroma - np.median(chroma, axis=0)).max(axis=1)
    return float((far <= PAPER_CHROMA).mean())


def _frame(height, width):
    """The frame's corners, clockwise from top-left, as a quadrilateral
    (float32 (4, 2)): what a sheet's part in view is measured against."""
    return np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])


def _turn(a, b):
    """Degrees between two line directions (radians, modulo 180 degrees)."""
    d = abs(a - b) % np.pi
    return np.degrees(min(d, np.pi - d))


def _regions(view, faint=False):
    """(bound, corners, least contrast) of each bright or edge-outlined region
    of a `_view` that could be a sheet: its share of the frame x its
    rectangularity ** RECTANGULARITY_WEIGHT, its quadrilateral (clockwise),
    and how much brighter than around it a sheet in it must be. `faint`: only
    the regions outlined by faint edges (FAINT_LOW, FAINT_HIGH)."""
    darkest, share = view.darkest, view.share
    if faint:
        masks = [(1 - cv2.dilate(_edges(view, True), np.ones((side, side), np.uint8)) // 255,
                  EDGE_MIN_CONTRAST) for side in EDGE_GAPS]
        return _outlined(masks, darkest.size)
    otsu, _ = cv2.threshold(darkest, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    levels = {int(otsu)} | {int(np.searchsorted(share, p / 100)) for p in LEVEL_PERCENTILES}
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    # Opening cuts thin bright bridges between the sheet and the room.
    masks = [(cv2.morphologyEx((darkest > level).astype(np.uint8), cv2.MORPH_OPEN, kernel),
              MIN_CONTRAST) for level in sorted(levels)]
    # A sheet as pale as the wall behind it, or in shadow in front of it, is
    # still outlined by its edges, found in each channel: paper and wall can
    # be equally bright and differ in colour only (yellow paper, white wall).
    masks += [(1 - cv2.dilate(_edges(view), np.ones((side, side), np.uint8)) // 255,
               EDGE_MIN_CONTRAST) for side in EDGE_GAPS]
    return _outlined(masks, darkest.size)


def _outlined(masks, area):
    """The regions of (mask, least contrast) pairs that could be sheets, as
    `_by_bound` hands them over; `area`: the frame's, in pixels."""
    min_outline = 2 * np.sqrt(MIN_SHEET_AREA * area)
    found, seen = [], set()
    for mask, min_contrast in masks:
        # Outer boundaries of every region, nested ones too: a sheet outlined
        # by its edges lies in a hole of the room's region.
        contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        if not contours:
            continue
        # A region of MIN_SHEET_AREA has an outline at least 4 sqrt(area)
        # long, so of at least 2 sqrt(area) points (a diagonal step is one
        # point): counting them first, for all contours at once, skips the
        # specks of noise (most of the contours) cheaply.
        points = np.fromiter(map(len, contours), np.int64, len(contours))
        for index in np.flatnonzero((hierarchy[0, :, 3] < 0) & (points >= min_outline)):
            contour = contours[index]
            region = cv2.contourArea(contour)
            if region < MIN_SHEET_AREA * area:
                continue
            # Several masks outline the same sheet: each is judged once, with
            # the contrast the first of them asks (edge masks come last).
            key = tuple(np.rint(np.array(cv2.boundingRect(contour)) / 4).astype(int))
            if key in seen:
                continue
            seen.add(key)
            hull = cv2.convexHull(contour)
            hull_area = cv2.contourArea(hull)
            if region < MIN_RECTANGULARITY * hull_area:
                continue
            bound = min(region / area, 1.0) * (region / max(hull_area, 1.0)) ** RECTANGULARITY_WEIGHT
            found.append((bound, len(found), (contour, hull, region, hull_area, mask.shape,
                                              min_contrast)))
    return _by_bound(found)


def _by_bound(found):
    """(bound, corners, least contrast) of the regions, best bound first.
    Fitting a region's quadrilateral costs more than finding it, and the first
    few regions usually end the search: each is fitted only once no region
    with a higher upper bound (its rectangularity against its hull) is left."""
    found.sort(key=lambda r: (-r[0], r[1]))
    ready = []
    for upper, order, args in found:
        while ready and -ready[0][0] > upper:
            yield heapq.heappop(ready)[2:]
        fitted = _fitted(*args)
        if fitted is not None:
            heapq.heappush(ready, (-fitted[0], order, *fitted))
    while ready:
        yield heapq.heappop(ready)[2:]


def _fitted(contour, hull, region, hull_area, shape, min_contrast):
    """(bound, quadrilateral, least contrast) of a region, or None when it is
    not a sheet's: mostly along the frame's edge, or not four-sided."""
    if _on_frame_edge(contour, shape) > MAX_FRAME_EDGE:
        return None
    height, width = shape
    quad = _clockwise(_quadrilateral(contour, hull, shape))
    # Only the part in view can be covered: a sheet partly out of frame
    # is as rectangular as one in full view. A quadrilateral that cuts
    # off part of the hull is measured against the hull.
    frame = _frame(height, width)
    visible, _ = cv2.intersectConvexConvex(quad, frame)
    # Above 1, the region spills out of its quadrilateral: not four sides.
    if region > 1.05 * max(visible, 1.0):
        return None
    rectangularity = region / max(visible, hull_area, 1.0)
    if rectangularity < MIN_RECTANGULARITY:
        return None
    return min(region / shape[0] / shape[1], 1.0) * rectangularity ** RECTANGULARITY_WEIGHT, \
        quad, min_contrast


def _judged(colour, darkest, bright, quad, min_step=EDGE_MIN_STEP):
    """(paper level, level around, edge support) of a snapped quadrilateral;
    the support is None when it cannot be a sheet: not square-cornered, too
    dark, or too little of its outline a sharp edge (stepping `min_step`)."""
    return _judged_all(colour, darkest, bright, quad[None], min_step)[0]


def _judged_all(colour, darkest, bright, quads, min_step=EDGE_MIN_STEP):
    """`_judged` of each of the quadrilaterals (m, 4, 2), the edge support of
    those square-cornered and bright enough sampled at once: the
    straight-sides and outward searches judge several a frame."""
    judged, weighed = [], []
    for quad in quads:
        if not _square_cornered(quad):
            judged.append((0.0, 0.0, None))
            continue
        level, around = _brightness(darkest, quad)
        judged.append((level, around, None))
        if level >= MIN_PAPER_LEVEL * bright:
            weighed.append(len(judged) - 1)
    supports = _edge_supports(colour, np.array([quads[i] for i in weighed], np.float32)
                              .reshape(-1, 4, 2), min_step)
    for index, support in zip(weighed, supports.tolist()):
        if support >= MIN_EDGE_SUPPORT:
            judged[index] = judged[index][:2] + (support,)
    return judged


def _side_points(quads):
    """Points along the sides of quadrilaterals (m, 4, 2) (clockwise corners):
    (points (n, 2), outward normal at each (n, 2), side of each (n,): 4 x the
    quadrilateral's index plus the side's, 0 to 3)."""
    starts, ends = quads.reshape(-1, 2), quads[:, NEXT].reshape(-1, 2)
    lengths = np.linalg.norm(ends - starts, axis=1)
    counts = np.maximum(4, (lengths / SIDE_SPACING).astype(int))
    side = np.repeat(np.arange(len(counts)), counts)
    # Each side's points spread from 5 % to 95 % of its length.
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = (0.05 + 0.9 * (np.arange(len(side)) - first) / np.repeat(counts - 1, counts))[:, None]
    points = starts[side] + (ends - starts)[side] * t
    direction = (ends - starts) / np.maximum(lengths, 1e-6)[:, None]
    # Clockwise on screen (y down): outward is the side's direction turned left.
    normals = np.stack([direction[:, 1], -direction[:, 0]], axis=1)[side]
    return points, normals, side


def _profile(image, points, normals, offsets):
    """An RGB image at points + normal * each offset: (n, len(offsets), 3)
    int16, and which points have every sample inside the frame and off its edge."""
    height, width = image.shape[:2]
    reach = points[:, None, :] + normals[:, None, :] * np.asarray(offsets)[None, :, None]
    xy = np.rint(reach).astype(int)
    x, y = xy[..., 0], xy[..., 1]
    inside = ((x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)).all(axis=1)
    np.clip(x, 0, width - 1, out=x)
    np.clip(y, 0, height - 1, out=y)
    # One flat index into the pixels: a third less work than indexing by (y, x).
    values = image.reshape(height * width, -1).take(y * width + x, axis=0).astype(np.int16)
    return values, inside


def _snapped(image, quad, min_step=EDGE_MIN_STEP):
    """The quadrilateral with each side moved onto the sharp edge nearest it
    (within SNAP pixels): a threshold or a dilated edge map outlines a sheet a
    few pixels off its true edge, and corners follow from the sides. A point
    moves only onto a step of at least `min_step` levels."""
    return _snapped_all(image, quad[None], min_step)[0]


def _snapped_all(image, quads, min_step=EDGE_MIN_STEP):
    """`_snapped` of each of the quadrilaterals (m, 4, 2), their sides sampled
    at once: the straight-sides search snaps several a frame."""
    if not len(quads):
        return []
    offsets = np.arange(-SNAP - 2, SNAP + 3)
    points, normals, side = _side_points(quads)
    values, inside = _profile(image, points, normals, offsets)
    step = np.abs(values[:, 4:] - values[:, :-4]).max(axis=2)
    best = step.argmax(axis=1)
    keep = inside & (step[np.arange(len(step)), best] >= min_step)
    moved = (points + normals * offsets[2:-2][best][:, None]).astype(np.float32)[keep]
    # The points kept lie side after side: each side's are one run of them.
    counts = np.bincount(side[keep], minlength=4 * len(quads))
    counts, ends = counts.tolist(), np.cumsum(counts).tolist()
    snapped = []
    for number, quad in enumerate(quads):
        lines = []
        for index, (a, b) in enumerate(zip(quad, quad[NEXT])):
            count, end = counts[4 * number + index], ends[4 * number + index]
            if count < 4:
                lines.append((a, b))
                continue
            vx, vy, x0, y0 = cv2.fitLine(moved[end - count:end], cv2.DIST_HUBER, 0, 0.01,
                                         0.01).ravel()
            lines.append((np.array([x0, y0]), np.array([x0 + vx, y0 + vy])))
        # Corner i is where side i - 1 meets side i.
        lines = np.array(lines, np.float64)[PREVIOUS]
        corners = _corners(lines[:, 0], lines[:, 1])
        near = corners is not None and np.abs(corners - quad).max() <= 2 * SNAP
        snapped.append(corners if near else quad)
    return snapped


def _edge_supports(image, quads, min_step=EDGE_MIN_STEP):
    """For each of the quadrilaterals (m, 4, 2) (clockwise corners), the share
    of its sides in view that run along a sharp edge (stepping at least
    `min_step` levels) of an RGB image (in any channel); parts outside or at
    the frame's edge are not counted. All are sampled at once: the
    straight-sides search weighs up to MAX_LINE_QUADS a frame."""
    if not len(quads):
        return np.zeros(0)
    offsets = (-EDGE_WIDE, EDGE_WIDE, -1 - EDGE_STEP, -1 + EDGE_STEP, -EDGE_STEP, EDGE_STEP,
               1 - EDGE_STEP, 1 + EDGE_STEP)
    points, normals, side = _side_points(quads)
    values, inside = _profile(image, points, normals, offsets)
    wide = np.abs(values[:, 0] - values[:, 1]).max(axis=1)
    # Rounding puts the side up to a pixel off the edge: the best of three.
    step = np.abs(values[:, 2::2] - values[:, 3::2]).max(axis=(1, 2))
    # A soft shadow's edge steps less at close range than across it; a thin
    # line (a ruled line on the paper) steps only at close range.
    sharp = (step >= min_step) & (step >= EDGE_SHARPNESS * wide) \
        & (wide >= EDGE_SHARPNESS * step)
    sides = 4 * len(quads)
    total = np.bincount(side, minlength=sides).reshape(-1, 4).sum(axis=1)
    seen = np.bincount(side[inside], minlength=sides).reshape(-1, 4)
    along = np.bincount(side[inside], weights=sharp[inside], minlength=sides).reshape(-1, 4)
    # Every side in view is an edge: a quadrilateral with one side across the
    # room (a sheet's region merged with a bright patch beside it) is not a sheet.
    shown = seen >= MIN_SIDE_POINTS
    broken = (shown & (along < MIN_SIDE_SUPPORT * seen)).any(axis=1)
    visible = seen.sum(axis=1)
    hidden = visible < MIN_VISIBLE_SIDES * total
    return np.where(hidden | broken, 0.0, along.sum(axis=1) / np.maximum(visible, 1))


def _brightness(darkest, quad):
    """The mean of the darkest channel inside the quadrilateral and in a band
    just outside it (where it is in view, for a sheet partly out of frame)."""
    # Only the quadrilateral's box and the band's reach around it are drawn:
    # the same pixels as on the whole frame, for a fraction of the work.
    corners = np.rint(quad).astype(np.int32)
    height, width = darkest.shape
    reach = BAND // 2 + 1
    left, top = np.maximum(corners.min(axis=0) - reach, 0)
    right, bottom = np.minimum(corners.max(axis=0) + reach + 1, (width, height))
    if left >= right or top >= bottom:
        return 0.0, 0.0
    inside = np.zeros((bottom - top, right - left), np.uint8)
    cv2.fillConvexPoly(inside, corners - (left, top), 1)
    band = cv2.dilate(inside, np.ones((BAND, BAND), np.uint8)) - inside
    if not inside.any() or not band.any():
        return 0.0, 0.0
    darkest = darkest[top:bottom, left:right]
    return cv2.mean(darkest, inside)[0], cv2.mean(darkest, band)[0]


def _square_cornered(quad):
    """Whether every corner is within CORNER_ANGLES: a rectangle seen at up
    to about 30 degrees of perspective."""
    before, after = quad[PREVIOUS] - quad, quad[NEXT] - quad
    cosine = (before * after).sum(axis=1) / np.maximum(
        np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1), 1e-6)
    angles = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    return bool(((angles >= CORNER_ANGLES[0]) & (angles <= CORNER_ANGLES[1])).all())


def _on_frame_edge(contour, shape):
    points = contour.reshape(-1, 2)
    edge = ((points == 0) | (points == [shape[1] - 1, shape[0] - 1])).any(axis=1)
    return edge.mean()


def _quadrilateral(contour, hull, shape):
    """The four corners of a region: its hull's four longest sides, extended to
    meet, so that a corner outside the frame or under a finger is still found.
    Sides along the frame's edge are used only when fewer than four others remain."""
    polygon = cv2.approxPolyDP(hull, 0.015 * cv2.arcLength(hull, True), True).reshape(-1, 2)
    polygon = polygon.astype(np.float32)
    if len(polygon) < 4:
        return cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float32)
    ends = polygon[np.r_[1:len(polygon), 0]]
    limit = np.array([shape[1] - 1, shape[0] - 1], np.float32)
    on_edge = (((polygon < 2) & (ends < 2)) | ((polygon > limit - 2) & (ends > limit - 2))).any(axis=1)
    length = np.linalg.norm(ends - polygon, axis=1)
    rank = np.lexsort((-length, on_edge))[:4]
    sides = np.sort(rank)
    corners = _corners(polygon[sides], ends[sides])
    if corners is None:
        return cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float32)
    return corners


def _corners(starts, ends):
    """Where each line starts[i]-ends[i] crosses the next one (4, 2), or None
    when two neighbours are nearly parallel."""
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    r = ends - starts
    s, c = r[NEXT], starts[NEXT]
    cross = r[:, 0] * s[:, 1] - r[:, 1] * s[:, 0]
    if (np.abs(cross) < 1e-6 * np.linalg.norm(r, axis=1) * np.linalg.norm(s, axis=1)
            + 1e-9).any():
        return None
    t = ((c - starts)[:, 0] * s[:, 1] - (c - starts)[:, 1] * s[:, 0]) / cross
    return (starts + t[:, None] * r).astype(np.float32)


def _clockwise(quad):
    """Corners from top-left, clockwise: the sheet is taken to be held roughly
    upright, which also decides between portrait and landscape."""
    center = quad.mean(axis=0)
    angles = np.arctan2(quad[:, 1] - center[1], quad[:, 0] - center[0])
    quad = quad[np.argsort(angles)]
    top_edges = quad[NEXT] - quad
    start = np.argmin(np.abs(np.arctan2(top_edges[:, 1], top_edges[:, 0])))
    return quad[(np.arange(4) + start) % 4]


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
    black on white, or None when it holds no plausible sketch.

    The sketch is redrawn as a canvas drawing looks: every stroke black,
    STROKE_WIDTH of the sketch's size wide (BROAD_STROKE_WIDTH when drawn
    broader) with a soft edge, whatever pen or pencil drew it; specks, ruled
    lines and what touches the sheet's edge dropped."""
    ratio = _flattened(sheet)
    ink = _ink(ratio)
    share = ink.mean()
    if not INK_AREA[0] <= share <= INK_AREA[1]:
        return None
    box = _box(ink)
    # The paper's statistics from every other pixel, for speed.
    sample = ratio[::2, ::2]
    reach = 2 * (PAPER_CLEARANCE // 2) + 1
    clear = cv2.dilate(ink[::2, ::2].astype(np.uint8), np.ones((reach, reach), np.uint8)) == 0
    paper = sample[(sample >= INK_RATIO) & clear]
    if paper.std() > MAX_PAPER_SPREAD:
        return None
    # The ink stands out from the paper's grain (a texture in the room may not).
    grain = paper[::4]
    noise = 1.4826 * float(np.median(np.abs(grain - np.median(grain))))
    if 1 - float(np.percentile(ratio[ink], 10)) < MIN_INK_CONTRAST * noise:
        return None
    return _redrawn(ink, box)


def _box(ink):
    """The ink's bounding box: (top, bottom, left, right), ends excluded."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _around(box, pad, shape):
    """Slices of the box grown by `pad` pixels on each side, within `shape`."""
    top, bottom, left, right = box
    return (slice(max(0, top - pad), min(shape[0], bottom + pad)),
            slice(max(0, left - pad), min(shape[1], right + pad)))


def _ink(ratio):
    """The sketch's ink in a flattened sheet: pixels below a seed level, grown
    into the connected pixels below a paler level (a pencil's faint edges and
    grain), without ruled lines, specks, or anything touching the sheet's edge."""
    smooth = cv2.GaussianBlur(ratio, (3, 3), 0)
    # A pale pencil never reaches INK_RATIO: the levels follow its darkest strokes.
    sample = smooth[::2, ::2].ravel()
    darkest = float(np.partition(sample, int(DARKEST_PERCENTILE / 100 * sample.size))[
        int(DARKEST_PERCENTILE / 100 * sample.size)])
    seed_level = min(max(INK_RATIO, 1 - SEED_DEPTH * (1 - darkest)), MAX_SEED_RATIO)
    pale_level = min(1 - PALE_DEPTH * (1 - seed_level), MAX_PALE_RATIO)
    pale = (smooth < pale_level).astype(np.uint8)
    pale[_ruled_lines(pale)] = 0
    ink = _kept_ink(pale, smooth < seed_level)
    if ink is None:
        # Ink reaches the sheet's edge: a finger over the strokes, maybe.
        pale[_reaching_in(pale)] = 0
        ink = _kept_ink(pale, smooth < seed_level, final=True)
    return ink


def _kept_ink(pale, seeds, final=False):
    """The components of `pale` holding a seed, not specks, not touching the
    sheet's edge; None (unless `final`) when a seeded one touches the edge."""
    # Statistics by bincount: cheaper than OpenCV's per-component stats.
    count, labels = cv2.connectedComponents(pale, connectivity=8, ltype=cv2.CV_16U)
    area = np.bincount(labels.ravel(), minlength=count)
    seeded = np.bincount(labels[seeds], minlength=count) > 0
    seeded[0] = False
    touching = _at_edge(labels, count)
    big = area >= MIN_SPECK * pale.size
    if not final and (seeded & touching & big).any():
        return None
    return _per_pixel(seeded & ~touching & big, labels)


def _per_pixel(table, labels):
    """table[labels]: a bool per labelled component, for each pixel. By
    OpenCV's lookup table when the labels fit in a byte (most sheets have a
    few components), else by np.take: both a fraction of NumPy's indexing."""
    if len(table) <= 256:
        lut = np.zeros(256, np.uint8)
        lut[:len(table)] = table
        return cv2.LUT(labels.astype(np.uint8), lut).view(bool)
    return np.take(table, labels)


def _at_edge(labels, count):
    """Which of `count` labelled components touch the image's edge."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.bincount(edge, minlength=count) > 0


def _reaching_in(pale):
    """A finger (or the room) reaching over the sheet's edge, with a rim: once
    the light is divided out, only its outline is dark, a loop that closes on
    the sheet's edge. Filled, it is a blob touching the edge; cut away, it no
    longer joins the strokes it covers to the edge (which drops the sketch)."""
    # Areas by bincount: OpenCV's per-component stats cost twice the labelling.
    count, labels = cv2.connectedComponents(1 - pale, connectivity=4)
    enclosed = _at_edge(labels, count)
    enclosed[0] = False
    enclosed[np.argmax(np.bincount(labels.ravel(), minlength=count) * (np.arange(count) > 0))] = False
    inside = _per_pixel(enclosed, labels)
    side = max(3, int(min(pale.shape) * THIN_STROKE) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    blobs = cv2.morphologyEx(pale | inside.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    count, labels = cv2.connectedComponents(blobs, connectivity=8)
    touching = _at_edge(labels, count)
    # Mostly a filled outline (a finger), not ink throughout (the room, a
    # shadow), which is dropped whole for touching the edge anyway.
    outlined = np.bincount(labels[inside], minlength=count) > \
        0.5 * np.bincount(labels.ravel(), minlength=count)
    finger = touching & outlined
    finger[0] = False
    if not finger.any():
        return np.zeros(pale.shape, bool)
    return cv2.dilate(_per_pixel(finger, labels).view(np.uint8), kernel).astype(bool)


def _ruled_lines(pale):
    """Lines of lined paper: horizontal runs (a line a pixel or two off level
    still has long runs) joined into lines that cross LINE_SHARE of the sheet
    and come near both of its sides; not where a stroke crosses them."""
    height, width = pale.shape
    runs = cv2.morphologyEx(pale, cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, width // 6), 1)))
    lines = np.zeros(pale.shape, bool)
    # A line spans LINE_SHARE of the width within LINE_HEIGHT of the height:
    # rows that few together hold that many run pixels, or there is none
    # (most sheets), and labelling the runs is skipped.
    rows = np.r_[0, np.cumsum(cv2.reduce(runs, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel())]
    band = max(1, int(LINE_HEIGHT * height))
    if (rows[band:] - rows[:-band]).max(initial=0) < LINE_SHARE * width:
        return lines
    # Every component's box is the box of its outer contour, one of these:
    # when no box is a line's, labelling (ten times the cost) is skipped.
    contours, _ = cv2.findContours(runs, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = np.array([cv2.boundingRect(contour) for contour in contours]).reshape(-1, 4)
    if not _line_boxes(boxes[:, 0], boxes[:, 2], boxes[:, 3], pale.shape).any():
        return lines
    count, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    ruled = _line_boxes(stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_WIDTH],
                        stats[:, cv2.CC_STAT_HEIGHT], pale.shape)
    ruled[0] = False
    if not ruled.any():
        return lines
    lines = _per_pixel(ruled, labels)
    # A stroke crossing a line is ink a few rows above and below it as well.
    above = np.zeros_like(pale)
    above[LINE_REACH:] = pale[:-LINE_REACH]
    below = np.zeros_like(pale)
    below[:-LINE_REACH] = pale[LINE_REACH:]
    lines &= ~((above > 0) & (below > 0))
    return lines


def _line_boxes(left, span, tall, shape):
    """Which boxes (left, width, height) are a ruled line's on a sheet of
    `shape`: across LINE_SHARE of it, near both of its sides, low."""
    height, width = shape
    side = max(1, int(width * 0.1))
    return (span >= LINE_SHARE * width) & (left < side) & (left + span > width - side) \
        & (tall <= LINE_HEIGHT * height)


def _redrawn(ink, box):
    """The ink drawn again as a canvas drawing looks: black, its strokes
    widened to STROKE_WIDTH of the sketch's longer side (or, when broader,
    thinned to BROAD_STROKE_WIDTH), on a canvas CANVAS_SIDE pixels across the
    sketch, scaled up smoothly to the sheet's size. A pen on paper draws
    thinner and sharper lines, for the size of the drawing, than a finger or
    a mouse on a small canvas, and the classifier learns from both. Only the
    part of the sheet around the ink is drawn: the rest is white."""
    top, bottom, left, right = box
    side = max(bottom - top, right - left)
    # Room for the widened strokes and the canvas's blur, an even number of pixels.
    pad = 2 * int(STROKE_WIDTH * side / 2 + 2 * side / CANVAS_SIDE + 3)
    around = _around(box, pad, ink.shape)
    out = np.full(ink.shape, 255, np.uint8)
    ink = ink[around]
    height, width = ink.shape
    # Drawn at half size, for speed, keeping every inked pixel (a 2x2 maximum)
    # so that thin strokes stay joined.
    even = ink[:height - height % 2, :width - width % 2]
    half = (even[::2, ::2] | even[1::2, ::2] | even[::2, 1::2] | even[1::2, 1::2])
    half = half.astype(np.uint8)
    # The pen's width: twice the ink's area over its outline's length.
    outline = half & ~cv2.erode(half, np.ones((3, 3), np.uint8))
    pen = 2 * int(half.sum()) / max(int(outline.sum()), 1)
    grow = max(0.0, (STROKE_WIDTH * side / 2 - pen) / 2)
    if pen > STROKE_WIDTH * side / 2:
        half = _thinned(half, pen, BROAD_STROKE_WIDTH * side / 2)
    distance = cv2.distanceTransform(1 - half, cv2.DIST_L2, 3)
    clean = np.clip(distance - grow - 0.5, 0, 1)
    scale = min(1.0, 2 * CANVAS_SIDE / side)
    canvas = cv2.resize(clean, (max(1, round(clean.shape[1] * scale)),
                                max(1, round(clean.shape[0] * scale))),
                        interpolation=cv2.INTER_AREA)
    clean = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)
    out[around] = cv2.convertScaleAbs(clean, alpha=255)
    return out


def _thinned(ink, pen, width):
    """Strokes `pen` pixels wide (0/1 uint8) thinned to `width` about their
    centre lines (a connected thinning: strokes stay joined and loops
    closed); a part narrower than the rest keeps its centre line `width`
    wide, and a filled shape stays filled."""
    centre = cv2.ximgproc.thinning(ink * 255, thinningType=cv2.ximgproc.THINNING_ZHANGSUEN)
    inside = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    along = cv2.distanceTransform(255 - centre, cv2.DIST_L2, 3)
    return ((inside > (pen - width) / 2) | (along <= (width - 1) / 2)).astype(np.uint8) & ink


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
