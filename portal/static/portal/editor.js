/* The area editor (#editor in the Areas tab): opening a new area or an existing one (with its full geometry and
   ETag), its form (provider, name, price, the shape's summary and tools), saving (POST; or PATCH of what changed,
   with If-Match), the notice when the area was changed elsewhere meanwhile (412), and deleting. The shape itself is
   drawn and edited by draw.js.

   Exports: initEditor(), startNewArea(), openArea(id), closeEditor(). */

import { putArea, removeArea, renderAreas, watchIndex } from "./areas.js";
import * as draw from "./draw.js";
import { clearErrors, messagesOf, showErrors } from "./errors.js";
import { describeShape, toLatLngs } from "./geometry.js";
import { hideArea, map, showArea } from "./map.js";
import { api, byId, say, showTab, urls } from "./page.js";
import { providerOptions } from "./providers.js";
import { state } from "./state.js";

const FINISH_FIRST = "Finish the shape first: click its first corner again (or press Escape).";
const DRAW_FIRST = "Draw the area on the map first.";

const form = () => byId("area-form");

function openEditorForm({ title, provider, name, price }) {
  const areaForm = form();
  clearErrors(areaForm);
  draw.clearProblem();
  byId("editor-title").textContent = title;
  providerOptions(byId("area-provider"));
  if (provider) byId("area-provider").value = provider;
  areaForm.elements.name.value = name;
  areaForm.elements.price.value = price;
  updateCurrency();
  byId("confirm-delete").hidden = true;
  byId("stale").hidden = true;
  areaForm.querySelector("[data-action=delete]").hidden = !state.editor.areaId;
  byId("editor").hidden = false;
  byId("draw-area").disabled = true;
  showTab("areas");
}

function updateCurrency() {
  const provider = state.providers.get(Number(byId("area-provider").value));
  byId("area-currency").textContent = provider ? `(${provider.currency})` : "";
}

function updateShapeSummary() {
  const editor = state.editor;
  const drawn = Boolean(editor) && draw.hasShape();
  byId("shape-summary").textContent = drawn
    ? `${describeShape(draw.shapeParts())}${editor.dirty && editor.areaId ? " (changed)" : ""}.`
    : "Not drawn yet.";
  for (const button of form().querySelectorAll("[data-tool]")) button.disabled = !drawn;
}

export function startNewArea() {
  if (!state.providers.size) {
    say("Create a provider first: areas belong to a provider.", "error");
    showTab("providers");
    return;
  }
  closeEditor();
  state.editor = { areaId: null, etag: null, original: null, dirty: true };
  draw.beginShape(null);
  openEditorForm({ title: "New area", provider: byId("area-filter").value, name: "", price: "" });
  updateShapeSummary();
  draw.startDrawing("new");
}

export async function openArea(id) {
  closeEditor();
  const result = await api.request("GET", `${urls.areas}${id}/`);
  if (!result.ok) {
    say(`The area could not be opened: ${messagesOf(result.data)}`, "error");
    return;
  }
  const feature = result.data;
  state.areas.set(id, { ...state.areas.get(id), ...feature });
  state.editor = { areaId: id, etag: result.etag, original: feature, dirty: false };
  hideArea(id);
  draw.beginShape(toLatLngs(feature.geometry));
  openEditorForm({
    title: `Edit ${feature.properties.name}`,
    provider: feature.properties.provider,
    name: feature.properties.name,
    price: feature.properties.price,
  });
  updateShapeSummary();
  renderAreas();
  map.fitBounds(draw.shapeBounds(), { padding: [32, 32], maxZoom: 15 });
}

export function closeEditor() {
  const editor = state.editor;
  if (!editor) return;
  draw.endShape();
  state.editor = null;
  if (editor.areaId) showArea(editor.areaId);
  byId("editor").hidden = true;
  byId("draw-area").disabled = false;
  renderAreas();
}

async function saveArea(event) {
  event.preventDefault();
  const editor = state.editor;
  if (!editor) return;
  const areaForm = form();
  if (draw.isDrawing()) {
    showErrors(areaForm, { geometry: [FINISH_FIRST] });
    return;
  }
  if (!draw.hasShape()) {
    showErrors(areaForm, { geometry: [DRAW_FIRST] });
    return;
  }
  const properties = {
    provider: Number(areaForm.elements.provider.value),
    name: areaForm.elements.name.value,
    price: areaForm.elements.price.value.trim(),
  };
  let result;
  const submit = areaForm.querySelector("[type=submit]");
  submit.disabled = true;
  if (editor.areaId === null) {
    const body = { type: "Feature", geometry: draw.shapeGeometry(), properties };
    result = await api.request("POST", urls.areas, { body });
  } else {
    // Only what changed: the API writes just the members sent, and If-Match refuses a stale version.
    const original = editor.original.properties;
    const changed = Object.fromEntries(
      Object.entries(properties).filter(([name, value]) => String(value) !== String(original[name])),
    );
    const body = { type: "Feature", properties: changed };
    if (editor.dirty) body.geometry = draw.shapeGeometry();
    result = await api.request("PATCH", `${urls.areas}${editor.areaId}/`, { body, ifMatch: editor.etag });
  }
  submit.disabled = false;
  if (result.status === 412) {
    clearErrors(areaForm);
    byId("stale").hidden = false;
    byId("stale").querySelector("button").focus();
    return;
  }
  if (!result.ok) {
    showErrors(areaForm, result.data);
    draw.showProblem(result.data && result.data.geometry);
    return;
  }
  const feature = result.data;
  closeEditor();
  putArea(feature);
  renderAreas();
  say(`Saved “${feature.properties.name}”.`, "ok");
  if (feature.properties.index.status === "pending") watchIndex(feature.id);
}

async function deleteArea() {
  const editor = state.editor;
  const result = await api.request("DELETE", `${urls.areas}${editor.areaId}/`, { ifMatch: editor.etag });
  if (result.status === 412) {
    byId("confirm-delete").hidden = true;
    byId("stale").hidden = false;
    return;
  }
  if (!result.ok) {
    showErrors(form(), result.data);
    return;
  }
  const name = editor.original.properties.name;
  const id = editor.areaId;
  closeEditor();
  removeArea(id);
  renderAreas();
  say(`Deleted “${name}”.`, "ok");
}

// The form's buttons: the shape's tools (Add a part, Add a hole, Move) and the actions.
function formClicked(event) {
  const tool = event.target.closest("[data-tool]");
  if (tool && state.editor && draw.hasShape()) {
    if (tool.dataset.tool === "move") draw.toggleMoving();
    else draw.startDrawing(tool.dataset.tool);
  }
  const action = event.target.closest("[data-action]");
  if (!action) return;
  const areaForm = form();
  if (action.dataset.action === "cancel") closeEditor();
  if (action.dataset.action === "delete") {
    areaForm.querySelector(".confirm-name").textContent = `“${state.editor.original.properties.name}”`;
    byId("confirm-delete").hidden = false;
    byId("confirm-delete").querySelector("[data-action=keep]").focus();
  }
  if (action.dataset.action === "keep") byId("confirm-delete").hidden = true;
  if (action.dataset.action === "confirm-delete") deleteArea();
  if (action.dataset.action === "reload") openArea(state.editor.areaId);
}

export function initEditor() {
  draw.initDrawing({
    onChange({ firstShape }) {
      state.editor.dirty = true;
      updateShapeSummary();
      if (firstShape) form().elements.name.focus(); // the shape is there: now its name and price
    },
    onAbandon: closeEditor,
    onMistake(message) {
      showErrors(form(), { geometry: [message] });
    },
  });
  form().addEventListener("submit", saveArea);
  form().addEventListener("click", formClicked);
  byId("area-provider").addEventListener("change", updateCurrency);
  byId("draw-area").addEventListener("click", startNewArea);
}
