// The drawing pad (demo_guard.Pad): ink on a plain 2D canvas, drawn in the
// same event that moved the pen. Gradio's image editor draws with WebGL,
// which without a GPU is emulated on the CPU: 0.3-0.8 s from a move to its
// ink (docs/PERFORMANCE.md). Runs as the component's `js_on_load`: `element`
// is its root, `props` its value and settings, `trigger` sends its events.
const canvas = element.querySelector("canvas");
const area = element.querySelector(".pad-area");
const pen = canvas.getContext("2d");
const strokes = [];
let held = null;

const blank = () => {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  pen.fillStyle = pen.strokeStyle = "#000";
  pen.lineWidth = 2 * props.brush;
  pen.lineCap = pen.lineJoin = "round";
};
const dot = ([x, y]) => {
  pen.beginPath();
  pen.arc(x, y, props.brush, 0, 2 * Math.PI);
  pen.fill();
};
const line = (from, to) => {
  pen.beginPath();
  pen.moveTo(...from);
  pen.lineTo(...to);
  pen.stroke();
};
const redraw = () => {
  blank();
  for (const points of strokes) {
    dot(points[0]);
    for (let i = 1; i < points.length; i++) line(points[i - 1], points[i]);
  }
};
// The drawing, as the server reads it: a PNG of the canvas, or nothing.
// Setting the value sends the component's change event.
const send = () => {
  props.value = strokes.length ? canvas.toDataURL("image/png") : null;
};
// Canvas pixels of a pointer event; outside the canvas when the pen is on
// the margin around it, where the canvas clips its ink.
const at = (e) => {
  const box = canvas.getBoundingClientRect();
  return [(e.clientX - box.left) * canvas.width / box.width,
          (e.clientY - box.top) * canvas.height / box.height];
};
const onCanvas = ([x, y]) => x > -props.brush && y > -props.brush &&
  x < canvas.width + props.brush && y < canvas.height + props.brush;

// A stroke may begin on the margin: the pen is followed from where it went
// down, and its ink starts where it enters the canvas.
area.addEventListener("pointerdown", (e) => {
  if (held || e.button !== 0) return;
  area.setPointerCapture(e.pointerId);
  const start = at(e);
  held = {id: e.pointerId, points: [start]};
  strokes.push(held.points);
  dot(start);
});
area.addEventListener("pointermove", (e) => {
  if (!held || e.pointerId !== held.id) return;
  const moves = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const move of moves.length ? moves : [e]) {
    const point = at(move);
    line(held.points[held.points.length - 1], point);
    held.points.push(point);
  }
});
const lift = (e) => {
  if (!held || e.pointerId !== held.id) return;
  const {points} = held;
  held = null;
  // A stroke that never reached the canvas left no ink.
  if (!points.some(onCanvas)) strokes.pop();
  else send();
};
area.addEventListener("pointerup", lift);
area.addEventListener("pointercancel", lift);
area.addEventListener("lostpointercapture", lift);
// A finger on the pad draws: it neither scrolls nor zooms the page (where
// `touch-action` is not enough), and a long press opens no menu.
for (const type of ["touchstart", "touchmove", "touchend"]) {
  area.addEventListener(type, (e) => e.preventDefault(), {passive: false});
}
area.addEventListener("contextmenu", (e) => e.preventDefault());

// An event that takes the drawing (Teach's "Add", `Pad.taking`) marks how
// many strokes it took, so that emptying the pad after it leaves the strokes
// drawn while the drawing was being added.
let taken = null;
canvas.addEventListener("taken", () => { taken = strokes.length; });

element.querySelector("button.undo").addEventListener("click", () => {
  if (held || !strokes.length) return;
  strokes.pop();
  if (taken > strokes.length) taken = strokes.length;
  redraw();
  send();
});
element.querySelector("button.clear").addEventListener("click", () => {
  if (held) return;
  strokes.length = 0;
  if (taken !== null) taken = 0;
  redraw();
  trigger("clear");
  send();
});
// The server empties the pad by setting its value to nothing.
watch("value", () => {
  if (props.value) return;
  const gone = taken ?? (held ? 0 : strokes.length);
  taken = null;
  if (!gone) return;
  strokes.splice(0, gone);
  redraw();
  if (strokes.length && !held) send();
});
redraw();
canvas.dataset.ready = "true";
