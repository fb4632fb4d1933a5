/* Drawing and editing, on the map, the shape of the area open in the editor (leaflet-geoman): drawing a new shape,
   another part or a hole; dragging, adding and removing corners; moving the whole shape; and the marker of the
   spot where the API found the shape invalid. The editor (editor.js) owns the form: it starts and ends a shape
   here, and hears of every change through the callbacks given to initDrawing.

   Exports: initDrawing({ onChange, onAbandon, onMistake }), beginShape(latlngs), endShape(), startDrawing(purpose),
   toggleMoving(), isDrawing(), hasShape(), shapeParts(), shapeGeometry(), shapeBounds(), showProblem(messages),
   clearProblem(). */

import { geometryProblem } from "./errors.js";
import { geometryOf, insideRing, partsOf } from "./geometry.js";
import { map } from "./map.js";
import { byId } from "./page.js";

const EDIT_STYLE = { color: "#7c3aed", weight: 3, fillOpacity: 0.2 };
const PROBLEM_STYLE = { radius: 10, color: "#b42318", weight: 3, fillColor: "#fecdca", fillOpacity: 0.9 };
const HINTS = {
  new: "Click on the map to place the corners; click the first corner again to close the shape. Escape stops.",
  part: "Draw the new part: click its corners, then the first corner again. Escape stops.",
  hole: "Draw the hole inside a part: click its corners, then the first corner again. Escape stops.",
  edit: "Drag a corner to move it, drag a midpoint to add one, right-click a corner to remove it.",
  move: "Drag the area to where it belongs, then press Move again to edit corners.",
};
const HOLE_OUTSIDE = "A hole must lie inside a part of the area: draw it again, inside one.";

// While an area is open in the editor: { layer (null until a new area's first ring is drawn), purpose (what is being
// drawn: "new", "part", "hole", or null), moving (the whole shape is being dragged) }; null otherwise.
let shape = null;
let problemMarker = null;
let listeners = { onChange() {}, onAbandon() {}, onMistake() {} };

const moveButton = () => byId("area-form").querySelector("[data-tool=move]");

function hint(text) {
  byId("editor-hint").textContent = text;
}

export const isDrawing = () => map.pm.globalDrawModeEnabled();
export const hasShape = () => Boolean(shape && shape.layer);
export const shapeParts = () => partsOf(shape.layer);
export const shapeGeometry = () => geometryOf(shape.layer);
export const shapeBounds = () => shape.layer.getBounds();

// An area opens in the editor: with its rings (toLatLngs) to edit, or null for a new area not drawn yet.
export function beginShape(latlngs) {
  shape = { layer: null, purpose: null, moving: false };
  if (latlngs) {
    shape.layer = makeWorkingLayer(latlngs);
    editVertices();
  }
}

// The editor closes: whatever was being drawn is dropped, and the shape leaves the map.
export function endShape() {
  if (!shape) return;
  if (isDrawing()) {
    shape.purpose = null;
    map.pm.disableDraw();
  }
  stopMoving();
  if (shape.layer) {
    shape.layer.pm.disable();
    map.removeLayer(shape.layer);
  }
  shape = null;
  clearProblem();
}

export function startDrawing(purpose) {
  if (isDrawing()) {
    shape.purpose = null; // switching what is drawn: the shape begun is dropped, not taken as the new one
    map.pm.disableDraw();
  }
  stopMoving();
  if (shape.layer) shape.layer.pm.disable();
  shape.purpose = purpose;
  map.pm.enableDraw("Polygon", {
    allowSelfIntersection: true, // the API says where a shape crosses itself, and the page shows the spot
    snappable: true,
    tooltips: true,
    templineStyle: EDIT_STYLE,
    hintlineStyle: { ...EDIT_STYLE, dashArray: "5 5" },
    pathOptions: EDIT_STYLE,
  });
  hint(HINTS[purpose]);
}

function makeWorkingLayer(latlngs) {
  const layer = L.polygon(latlngs, EDIT_STYLE).addTo(map);
  const changed = () => {
    if (shape && shape.layer === layer) {
      clearProblem();
      listeners.onChange({ firstShape: false });
    }
  };
  layer.on("pm:edit pm:dragend pm:vertexremoved", changed);
  return layer;
}

function editVertices() {
  if (!hasShape()) return;
  shape.layer.pm.enable({ allowSelfIntersection: true, snappable: true, draggable: false });
  hint(HINTS.edit);
}

function stopMoving() {
  if (!shape || !shape.moving) return;
  shape.layer.pm.disableLayerDrag();
  shape.moving = false;
  moveButton().setAttribute("aria-pressed", "false");
}

export function toggleMoving() {
  if (isDrawing()) map.pm.disableDraw();
  if (shape.moving) {
    stopMoving();
    editVertices();
    return;
  }
  shape.layer.pm.disable();
  shape.layer.pm.setOptions({ draggable: true }); // off while editing corners, so a stray drag moves nothing
  shape.layer.pm.enableLayerDrag();
  shape.moving = true;
  moveButton().setAttribute("aria-pressed", "true");
  hint(HINTS.move);
}

// A ring was drawn: it becomes the shape, another part of it, or a hole in the part around it.
function addRing(event) {
  const ring = event.layer.getLatLngs()[0];
  map.removeLayer(event.layer);
  if (!shape) return;
  const purpose = shape.purpose;
  shape.purpose = null;
  if (!shape.layer) {
    shape.layer = makeWorkingLayer([[ring]]);
  } else if (purpose === "part") {
    shape.layer.setLatLngs([...partsOf(shape.layer), [ring]]);
  } else if (purpose === "hole") {
    const parts = partsOf(shape.layer);
    const host = parts.findIndex((rings) => ring.every((point) => insideRing(point, rings[0])));
    if (host < 0) {
      listeners.onMistake(HOLE_OUTSIDE);
    } else {
      parts[host].push(ring);
      shape.layer.setLatLngs(parts);
    }
  }
  clearProblem();
  editVertices();
  listeners.onChange({ firstShape: purpose === "new" });
}

// Drawing stopped without a shape (Escape): a new area with nothing drawn is abandoned.
function drawingStopped() {
  if (shape && shape.purpose) {
    shape.purpose = null;
    if (!shape.layer) listeners.onAbandon();
    else editVertices();
  }
}

// A geometry the API refused at a spot (GEOS's location) is marked there, with the reason beside it.
export function showProblem(messages) {
  clearProblem();
  const problem = geometryProblem(messages);
  if (!problem) return;
  const where = L.latLng(problem.lat, problem.lng);
  problemMarker = L.circleMarker(where, { ...PROBLEM_STYLE, pmIgnore: true })
    .bindTooltip(problem.reason, { permanent: true, direction: "top", offset: [0, -10], className: "problem-tooltip" })
    .addTo(map);
  if (!map.getBounds().contains(where)) map.panTo(where);
}

export function clearProblem() {
  if (problemMarker) map.removeLayer(problemMarker);
  problemMarker = null;
}

// onChange({ firstShape }): the shape changed (firstShape: a new area's shape was just drawn);
// onAbandon(): a new area's drawing stopped with nothing drawn; onMistake(message): a drawn ring was not taken.
export function initDrawing({ onChange, onAbandon, onMistake }) {
  listeners = { onChange, onAbandon, onMistake };
  map.on("pm:create", addRing);
  map.on("pm:drawend", drawingStopped);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isDrawing()) map.pm.disableDraw();
  });
}
