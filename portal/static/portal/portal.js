/* The provider portal: providers, their service areas on a map, drawing and editing, imports and lookups.

   Everything goes through the public API (/api/v1/) with the session cookie and the CSRF header, so the server
   validates, limits and versions every change exactly as for any other client; this page only shows what it says.
   Coordinates: Leaflet works in [lat, lng], GeoJSON in [lng, lat]. */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("portal-config").textContent);
  const urls = config.urls;
  const byId = (id) => document.getElementById(id);

  const AREA_STYLE = { color: "#1d4ed8", weight: 2, fillOpacity: 0.18 };
  const UNAPPROVED_STYLE = { dashArray: "6 4" };
  const HIGHLIGHT_STYLE = { color: "#c2410c", weight: 4, fillOpacity: 0.4 };
  const EDIT_STYLE = { color: "#7c3aed", weight: 3, fillOpacity: 0.2 };
  // Lists carry simplified outlines (a thousandth of each area's size: the same on screen, far lighter); the
  // editor loads the full geometry of the one area it opens.
  const LIST_PAGE = "geometry=simplified&page_size=500";
  const DOWNLOAD_PAGE_SIZE = 100;
  const POLL_FIRST_MS = 1000;
  const POLL_MAX_MS = 5000;
  // GEOS names the spot of an invalid geometry: "Invalid geometry: Self-intersection[0.5 0.5]." (x is longitude).
  const GEOS_LOCATION = /^Invalid geometry: ([^[]+)\[(-?[\d.eE+-]+) (-?[\d.eE+-]+)\]/;

  const state = {
    providers: new Map(), // id -> provider, as the API returns it
    areas: new Map(), // id -> Feature (simplified geometry)
    layers: new Map(), // id -> the area's polygon on the map
    highlighted: new Set(),
    polling: new Set(),
    editor: null,
    lookupPoint: null,
  };

  // ---------------------------------------------------------------------------------------------------- the API

  async function api(method, url, { body, ifMatch } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = config.csrfToken;
    if (ifMatch) headers["If-Match"] = ifMatch;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { ok: false, status: 0, data: { detail: "The server could not be reached: check the connection and try again." } };
    }
    if (response.status === 401) {
      // The session ended (signed out in another tab, or expired): sign in again and come back.
      window.location.assign(`${urls.login}?next=${encodeURIComponent(window.location.pathname)}`);
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (error) {
        data = { detail: `The server answered ${response.status} ${response.statusText}.` };
      }
    }
    return {
      ok: response.ok,
      status: response.status,
      data,
      etag: response.headers.get("ETag"),
      retryAfter: Number(response.headers.get("Retry-After")) || 0,
    };
  }

  async function allPages(url) {
    const items = [];
    while (url) {
      const result = await api("GET", url);
      if (!result.ok) return { ok: false, result, items };
      items.push(...(result.data.results || result.data.features || []));
      url = result.data.next;
    }
    return { ok: true, items };
  }

  // ------------------------------------------------------------------------------------------------ small helpers

  function h(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function say(text, kind = "info") {
    const status = byId("status");
    status.textContent = text;
    status.dataset.kind = kind;
  }

  function messagesOf(value) {
    if (Array.isArray(value)) return value.map(messagesOf).join(" ");
    if (value && typeof value === "object") {
      if ("detail" in value) return messagesOf(value.detail); // quota errors' other members are for programs
      return Object.entries(value)
        .map(([key, inner]) => (key === "non_field_errors" ? messagesOf(inner) : `${key}: ${messagesOf(inner)}`))
        .join(" ");
    }
    return String(value);
  }

  function clearErrors(form) {
    form.querySelector(".form-errors").textContent = "";
    for (const field of form.querySelectorAll(".field.invalid")) {
      field.classList.remove("invalid");
      const error = field.querySelector(".field-error");
      if (error) error.textContent = "";
      for (const input of field.querySelectorAll("[aria-invalid]")) {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
    }
  }

  // An API error body shown where it belongs: each field's messages under that field, the rest above the form.
  function showErrors(form, data) {
    clearErrors(form);
    const general = [];
    let firstInvalid = null;
    if (data && typeof data === "object" && !Array.isArray(data)) {
      for (const [key, value] of Object.entries(data)) {
        if (key === "detail" || key === "non_field_errors") {
          general.push(messagesOf(value));
          continue;
        }
        if ("detail" in data) continue; // quota and service errors: their other members are for programs
        const field = form.querySelector(`.field[data-field="${key}"]`);
        const error = field && field.querySelector(".field-error");
        if (!error) {
          general.push(`${key}: ${messagesOf(value)}`);
          continue;
        }
        field.classList.add("invalid");
        error.textContent = messagesOf(value);
        const input = field.querySelector("input, select");
        if (input) {
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", error.id);
          firstInvalid = firstInvalid || input;
        }
      }
    } else {
      general.push(messagesOf(data));
    }
    form.querySelector(".form-errors").textContent = general.join(" ");
    if (firstInvalid) firstInvalid.focus();
  }

  function formatPrice(properties) {
    return `${properties.price} ${properties.currency || ""}`.trim();
  }

  // ------------------------------------------------------------------------------------------------------ the map

  const map = L.map("map", { worldCopyJump: true, minZoom: 2 }).setView([30, 0], 2);
  PortalBasemap.add(map, config.basemap);
  const areaGroup = L.featureGroup().addTo(map);
  // For the browser tests and the developer console: where a coordinate is on screen, and back.
  window.portalMap = map;

  // GeoJSON Polygon/MultiPolygon -> Leaflet's nested [lat, lng] rings, always as parts (a MultiPolygon).
  function toLatLngs(geometry) {
    const parts = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    return parts.map((rings) => rings.map((ring) => ring.slice(0, -1).map(([lng, lat]) => L.latLng(lat, lng))));
  }

  // Full precision: Leaflet rounds to 6 decimals by default, which would move every vertex of an edited area.
  function geometryOf(layer) {
    return layer.toGeoJSON(false).geometry;
  }

  function partsOf(layer) {
    const latlngs = layer.getLatLngs();
    return L.LineUtil.isFlat(latlngs[0]) ? [latlngs] : latlngs;
  }

  function insideRing(point, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [a, b] = [ring[i], ring[j]];
      if (a.lat > point.lat !== b.lat > point.lat) {
        const lng = ((b.lng - a.lng) * (point.lat - a.lat)) / (b.lat - a.lat) + a.lng;
        if (point.lng < lng) inside = !inside;
      }
    }
    return inside;
  }

  function styleFor(id) {
    const feature = state.areas.get(id);
    const provider = feature && state.providers.get(feature.properties.provider);
    const base = { ...AREA_STYLE, dashArray: null, ...(provider && !provider.approved ? UNAPPROVED_STYLE : {}) };
    return state.highlighted.has(id) ? { ...base, ...HIGHLIGHT_STYLE } : base;
  }

  function drawArea(feature) {
    const previous = state.layers.get(feature.id);
    if (previous) areaGroup.removeLayer(previous);
    state.layers.delete(feature.id);
    if (!feature.geometry) return;
    const layer = L.polygon(toLatLngs(feature.geometry), { ...styleFor(feature.id), pmIgnore: true });
    layer.bindTooltip(() => {
      const properties = state.areas.get(feature.id).properties;
      return h("span", {}, h("strong", {}, properties.name), ` · ${formatPrice(properties)}`);
    }, { sticky: true });
    state.layers.set(feature.id, layer);
    if (!state.editor || state.editor.areaId !== feature.id) areaGroup.addLayer(layer);
  }

  function putArea(feature) {
    state.areas.set(feature.id, feature);
    drawArea(feature);
  }

  function removeArea(id) {
    const layer = state.layers.get(id);
    if (layer) areaGroup.removeLayer(layer);
    state.layers.delete(id);
    state.areas.delete(id);
    state.polling.delete(id);
    state.highlighted.delete(id);
  }

  function highlight(ids) {
    state.highlighted = new Set(ids);
    for (const [id, layer] of state.layers) layer.setStyle(styleFor(id));
    renderAreas();
  }

  function fitToAreas() {
    const bounds = areaGroup.getBounds();
    if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 13 });
  }

  // ----------------------------------------------------------------------------------------------------- the tabs

  const TABS = ["areas", "providers", "lookup"];

  function showTab(name) {
    for (const tab of TABS) {
      const selected = tab === name;
      const button = byId(`tab-${tab}`);
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      byId(`panel-${tab}`).hidden = !selected;
    }
  }

  for (const tab of TABS) {
    const button = byId(`tab-${tab}`);
    button.addEventListener("click", () => showTab(tab));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length];
      showTab(next);
      byId(`tab-${next}`).focus();
    });
  }

  // ------------------------------------------------------------------------------------------------ the providers

  async function loadProviders() {
    const page = await allPages(`${urls.providers}?owner=${config.user.id}&page_size=500`);
    if (!page.ok) {
      say(`Your providers could not be loaded: ${messagesOf(page.result.data)}`, "error");
      return;
    }
    state.providers = new Map(page.items.map((provider) => [provider.id, provider]));
    renderProviders();
  }

  function providerOptions(select, { all = false } = {}) {
    const chosen = select.value;
    select.replaceChildren(
      ...(all ? [h("option", { value: "" }, "All my providers")] : []),
      ...[...state.providers.values()].map((provider) =>
        h("option", { value: provider.id }, `${provider.name} (${provider.currency})`),
      ),
    );
    if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
  }

  function renderProviders() {
    const list = byId("provider-list");
    list.replaceChildren(
      ...[...state.providers.values()].map((provider) =>
        h(
          "li",
          { class: "provider" },
          h(
            "div",
            { class: "provider-head" },
            h("strong", {}, provider.name),
            provider.approved
              ? h("span", { class: "badge ok" }, "Approved")
              : h("span", { class: "badge warn" }, "Not approved yet"),
          ),
          h("div", { class: "meta" }, `${provider.currency} · ${provider.language} · ${provider.email} · ${provider.phone_number}`),
          provider.approved
            ? null
            : h("p", { class: "note" }, "Its areas are not in public lookups until staff approve it."),
          h(
            "div",
            { class: "row-actions" },
            h("button", { type: "button", "data-edit-provider": provider.id }, "Edit"),
            h("button", { type: "button", "data-show-areas": provider.id }, "Show its areas"),
          ),
        ),
      ),
    );
    if (!state.providers.size) list.replaceChildren(h("li", { class: "empty" }, "You have no provider yet."));
    providerOptions(byId("area-filter"), { all: true });
    providerOptions(byId("area-provider"));
    providerOptions(byId("import-provider"));
    document.querySelector("#panel-areas .no-providers").hidden = state.providers.size > 0;
  }

  const providerForm = byId("provider-form");
  let providerEditing = null; // {id, etag, original} while an existing provider is in the form

  function fillCodes(select, choices) {
    select.replaceChildren(...choices.map(([code, name]) => h("option", { value: code }, `${code} · ${name}`)));
  }
  fillCodes(byId("provider-language"), config.languages);
  fillCodes(byId("provider-currency"), config.currencies);

  async function openProviderForm(id) {
    clearErrors(providerForm);
    providerEditing = null;
    const fields = { name: "", email: "", phone_number: "", language: "en", currency: "USD" };
    if (id) {
      const result = await api("GET", `${urls.providers}${id}/`);
      if (!result.ok) {
        say(`The provider could not be loaded: ${messagesOf(result.data)}`, "error");
        return;
      }
      providerEditing = { id, etag: result.etag, original: result.data };
      for (const name of Object.keys(fields)) fields[name] = result.data[name];
    }
    for (const [name, value] of Object.entries(fields)) providerForm.elements[name].value = value;
    byId("provider-form-title").textContent = id ? `Edit ${fields.name}` : "New provider";
    providerForm.hidden = false;
    byId("new-provider").hidden = true;
    providerForm.elements.name.focus();
  }

  function closeProviderForm() {
    providerForm.hidden = true;
    byId("new-provider").hidden = false;
    providerEditing = null;
  }

  providerForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = {};
    for (const name of ["name", "email", "phone_number", "language", "currency"]) {
      values[name] = providerForm.elements[name].value.trim();
    }
    const submit = providerForm.querySelector("[type=submit]");
    submit.disabled = true;
    let result;
    if (providerEditing) {
      const changed = Object.fromEntries(
        Object.entries(values).filter(([name, value]) => value !== providerEditing.original[name]),
      );
      result = await api("PATCH", `${urls.providers}${providerEditing.id}/`, {
        body: changed,
        ifMatch: providerEditing.etag,
      });
    } else {
      result = await api("POST", urls.providers, { body: values });
    }
    submit.disabled = false;
    if (result.status === 412) {
      showErrors(providerForm, {
        detail:
          "This provider was changed elsewhere since you opened it, so your change was not saved. " +
          "Cancel and open it again to see the current version.",
      });
      return;
    }
    if (!result.ok) {
      showErrors(providerForm, result.data);
      return;
    }
    state.providers.set(result.data.id, result.data);
    closeProviderForm();
    renderProviders();
    for (const feature of state.areas.values()) {
      if (feature.properties.provider === result.data.id) feature.properties.currency = result.data.currency;
    }
    renderAreas();
    say(
      result.data.approved
        ? `Saved ${result.data.name}.`
        : `Saved ${result.data.name}. It is not approved yet: public lookups leave its areas out until staff approve it.`,
      "ok",
    );
  });

  byId("new-provider").addEventListener("click", () => openProviderForm(null));
  providerForm.querySelector("[data-action=cancel]").addEventListener("click", closeProviderForm);
  byId("provider-list").addEventListener("click", (event) => {
    const edit = event.target.closest("[data-edit-provider]");
    if (edit) openProviderForm(Number(edit.dataset.editProvider));
    const show = event.target.closest("[data-show-areas]");
    if (show) {
      byId("area-filter").value = show.dataset.showAreas;
      renderAreas();
      showTab("areas");
      const bounds = L.latLngBounds([]);
      for (const [id, layer] of state.layers) {
        if (state.areas.get(id).properties.provider === Number(show.dataset.showAreas)) bounds.extend(layer.getBounds());
      }
      if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 13 });
    }
  });

  // ---------------------------------------------------------------------------------------------------- the areas

  async function loadAreas() {
    for (const id of [...state.areas.keys()]) removeArea(id);
    for (const provider of state.providers.values()) {
      const page = await allPages(`${urls.areas}?provider=${provider.id}&${LIST_PAGE}`);
      if (!page.ok) say(`Areas of ${provider.name} could not be loaded: ${messagesOf(page.result.data)}`, "error");
      for (const feature of page.items) putArea(feature);
    }
    renderAreas();
    for (const [id, feature] of state.areas) {
      if (feature.properties.index.status === "pending") watchIndex(id);
    }
  }

  function statusBadge(index) {
    const title = index.status === "failed" ? index.error : index.status === "pending" ? "Being indexed: lookups already find it." : `Indexed ${index.indexed_at || ""}`;
    return h("span", { class: `badge status-${index.status}`, title }, index.status);
  }

  function renderAreas() {
    const filter = byId("area-filter").value;
    const rows = [...state.areas.values()]
      .filter((feature) => !filter || feature.properties.provider === Number(filter))
      .map((feature) => {
        const provider = state.providers.get(feature.properties.provider);
        const editing = state.editor && state.editor.areaId === feature.id;
        return h(
          "tr",
          {
            "data-area": feature.id,
            class: [editing ? "editing" : "", state.highlighted.has(feature.id) ? "highlighted" : ""].join(" ").trim() || null,
          },
          h(
            "td",
            {},
            h("button", { type: "button", class: "link-button", "data-open": feature.id }, feature.properties.name),
            provider ? h("div", { class: "sub" }, provider.name) : null,
          ),
          h("td", { class: "num" }, formatPrice(feature.properties)),
          h("td", {}, statusBadge(feature.properties.index)),
        );
      });
    byId("area-rows").replaceChildren(...rows);
    byId("areas-empty").hidden = rows.length > 0;
  }

  byId("area-filter").addEventListener("change", renderAreas);
  byId("area-rows").addEventListener("click", (event) => {
    const open = event.target.closest("[data-open]");
    if (open) openArea(Number(open.dataset.open));
  });

  // The index builds an area in the background: its status goes from pending to ready (or failed) without a reload.
  function watchIndex(id) {
    if (state.polling.has(id)) return;
    state.polling.add(id);
    let delay = POLL_FIRST_MS;
    const poll = async () => {
      if (!state.polling.has(id) || !state.areas.has(id)) return;
      const result = await api("GET", `${urls.areas}${id}/?geometry=none`);
      const feature = state.areas.get(id);
      if (!result.ok || !feature || !state.polling.has(id)) {
        state.polling.delete(id);
        return;
      }
      feature.properties.index = result.data.properties.index;
      renderAreas();
      if (feature.properties.index.status === "pending") {
        delay = Math.min(delay * 1.5, POLL_MAX_MS);
        setTimeout(poll, delay);
      } else {
        state.polling.delete(id);
        if (feature.properties.index.status === "failed") say(`“${feature.properties.name}” could not be indexed: ${feature.properties.index.error}`, "error");
      }
    };
    setTimeout(poll, delay);
  }

  // -------------------------------------------------------------------------------------------------- the editor

  const areaForm = byId("area-form");
  const HINTS = {
    new: "Click on the map to place the corners; click the first corner again to close the shape. Escape stops.",
    part: "Draw the new part: click its corners, then the first corner again. Escape stops.",
    hole: "Draw the hole inside a part: click its corners, then the first corner again. Escape stops.",
    edit: "Drag a corner to move it, drag a midpoint to add one, right-click a corner to remove it.",
    move: "Drag the area to where it belongs, then press Move again to edit corners.",
  };

  function hint(text) {
    byId("editor-hint").textContent = text;
  }

  function openEditorForm({ title, provider, name, price }) {
    clearErrors(areaForm);
    clearProblem();
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
  byId("area-provider").addEventListener("change", updateCurrency);

  function updateShapeSummary() {
    const editor = state.editor;
    if (!editor || !editor.layer) {
      byId("shape-summary").textContent = "Not drawn yet.";
    } else {
      const parts = partsOf(editor.layer);
      const holes = parts.reduce((count, rings) => count + rings.length - 1, 0);
      const corners = parts.flat().reduce((count, ring) => count + ring.length, 0);
      byId("shape-summary").textContent =
        `${parts.length} ${parts.length === 1 ? "part" : "parts"}, ${holes} ${holes === 1 ? "hole" : "holes"}, ` +
        `${corners} corners${editor.dirty && editor.areaId ? " (changed)" : ""}.`;
    }
    for (const button of areaForm.querySelectorAll("[data-tool]")) button.disabled = !editor || !editor.layer;
  }

  function startNewArea() {
    if (!state.providers.size) {
      say("Create a provider first: areas belong to a provider.", "error");
      showTab("providers");
      return;
    }
    closeEditor();
    state.editor = { areaId: null, etag: null, layer: null, dirty: true, original: null, purpose: null, moving: false };
    openEditorForm({ title: "New area", provider: byId("area-filter").value, name: "", price: "" });
    updateShapeSummary();
    startDrawing("new");
  }

  function startDrawing(purpose) {
    const editor = state.editor;
    if (map.pm.globalDrawModeEnabled()) {
      editor.purpose = null; // switching what is drawn: the shape begun is dropped, not taken as the new one
      map.pm.disableDraw();
    }
    stopMoving();
    if (editor.layer) editor.layer.pm.disable();
    editor.purpose = purpose;
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
      if (state.editor && state.editor.layer === layer) {
        state.editor.dirty = true;
        clearProblem();
        updateShapeSummary();
      }
    };
    layer.on("pm:edit pm:dragend pm:vertexremoved", changed);
    return layer;
  }

  function editVertices() {
    const editor = state.editor;
    if (!editor || !editor.layer) return;
    editor.layer.pm.enable({ allowSelfIntersection: true, snappable: true, draggable: false });
    hint(HINTS.edit);
  }

  function stopMoving() {
    const editor = state.editor;
    if (!editor || !editor.moving) return;
    editor.layer.pm.disableLayerDrag();
    editor.moving = false;
    areaForm.querySelector("[data-tool=move]").setAttribute("aria-pressed", "false");
  }

  map.on("pm:create", (event) => {
    const ring = event.layer.getLatLngs()[0];
    map.removeLayer(event.layer);
    const editor = state.editor;
    if (!editor) return;
    const purpose = editor.purpose;
    editor.purpose = null;
    if (!editor.layer) {
      editor.layer = makeWorkingLayer([[ring]]);
    } else if (purpose === "part") {
      editor.layer.setLatLngs([...partsOf(editor.layer), [ring]]);
    } else if (purpose === "hole") {
      const parts = partsOf(editor.layer);
      const host = parts.findIndex((rings) => ring.every((point) => insideRing(point, rings[0])));
      if (host < 0) {
        showErrors(areaForm, { geometry: ["A hole must lie inside a part of the area: draw it again, inside one."] });
      } else {
        parts[host].push(ring);
        editor.layer.setLatLngs(parts);
      }
    }
    editor.dirty = true;
    clearProblem();
    editVertices();
    updateShapeSummary();
    if (purpose === "new") areaForm.elements.name.focus(); // the shape is there: now its name and price
  });

  map.on("pm:drawend", () => {
    const editor = state.editor;
    if (editor && editor.purpose) {
      // Drawing stopped without a shape (Escape): a new area with nothing drawn is abandoned.
      editor.purpose = null;
      if (!editor.layer) closeEditor();
      else editVertices();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && map.pm.globalDrawModeEnabled()) map.pm.disableDraw();
  });

  areaForm.addEventListener("click", (event) => {
    const tool = event.target.closest("[data-tool]");
    if (tool && state.editor && state.editor.layer) {
      if (tool.dataset.tool === "move") toggleMoving();
      else startDrawing(tool.dataset.tool);
    }
    const action = event.target.closest("[data-action]");
    if (!action) return;
    if (action.dataset.action === "cancel") closeEditor();
    if (action.dataset.action === "delete") {
      areaForm.querySelector(".confirm-name").textContent = `“${state.editor.original.properties.name}”`;
      byId("confirm-delete").hidden = false;
      byId("confirm-delete").querySelector("[data-action=keep]").focus();
    }
    if (action.dataset.action === "keep") byId("confirm-delete").hidden = true;
    if (action.dataset.action === "confirm-delete") deleteArea();
    if (action.dataset.action === "reload") openArea(state.editor.areaId);
  });

  function toggleMoving() {
    const editor = state.editor;
    if (map.pm.globalDrawModeEnabled()) map.pm.disableDraw();
    if (editor.moving) {
      stopMoving();
      editVertices();
      return;
    }
    editor.layer.pm.disable();
    editor.layer.pm.setOptions({ draggable: true }); // off while editing corners, so a stray drag moves nothing
    editor.layer.pm.enableLayerDrag();
    editor.moving = true;
    areaForm.querySelector("[data-tool=move]").setAttribute("aria-pressed", "true");
    hint(HINTS.move);
  }

  async function openArea(id) {
    closeEditor();
    const result = await api("GET", `${urls.areas}${id}/`);
    if (!result.ok) {
      say(`The area could not be opened: ${messagesOf(result.data)}`, "error");
      return;
    }
    const feature = result.data;
    state.areas.set(id, { ...state.areas.get(id), ...feature });
    state.editor = { areaId: id, etag: result.etag, layer: null, dirty: false, original: feature, purpose: null, moving: false };
    const shown = state.layers.get(id);
    if (shown) areaGroup.removeLayer(shown);
    state.editor.layer = makeWorkingLayer(toLatLngs(feature.geometry));
    openEditorForm({
      title: `Edit ${feature.properties.name}`,
      provider: feature.properties.provider,
      name: feature.properties.name,
      price: feature.properties.price,
    });
    editVertices();
    updateShapeSummary();
    renderAreas();
    map.fitBounds(state.editor.layer.getBounds(), { padding: [32, 32], maxZoom: 15 });
  }

  function closeEditor() {
    const editor = state.editor;
    if (!editor) return;
    if (map.pm.globalDrawModeEnabled()) {
      editor.purpose = null;
      map.pm.disableDraw();
    }
    stopMoving();
    if (editor.layer) {
      editor.layer.pm.disable();
      map.removeLayer(editor.layer);
    }
    state.editor = null;
    const shown = editor.areaId && state.layers.get(editor.areaId);
    if (shown) areaGroup.addLayer(shown);
    clearProblem();
    byId("editor").hidden = true;
    byId("draw-area").disabled = false;
    renderAreas();
  }

  // A geometry the API refused at a spot (GEOS's location) is marked there, with the reason beside it.
  let problemMarker = null;

  function clearProblem() {
    if (problemMarker) map.removeLayer(problemMarker);
    problemMarker = null;
  }

  function showProblem(messages) {
    clearProblem();
    for (const message of [].concat(messages || [])) {
      const match = GEOS_LOCATION.exec(message);
      if (!match) continue;
      const where = L.latLng(Number(match[3]), Number(match[2]));
      problemMarker = L.circleMarker(where, {
        radius: 10,
        color: "#b42318",
        weight: 3,
        fillColor: "#fecdca",
        fillOpacity: 0.9,
        pmIgnore: true,
      })
        .bindTooltip(match[1].trim(), { permanent: true, direction: "top", offset: [0, -10], className: "problem-tooltip" })
        .addTo(map);
      if (!map.getBounds().contains(where)) map.panTo(where);
      return;
    }
  }

  areaForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const editor = state.editor;
    if (!editor) return;
    if (map.pm.globalDrawModeEnabled()) {
      showErrors(areaForm, { geometry: ["Finish the shape first: click its first corner again (or press Escape)."] });
      return;
    }
    if (!editor.layer) {
      showErrors(areaForm, { geometry: ["Draw the area on the map first."] });
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
      result = await api("POST", urls.areas, { body: { type: "Feature", geometry: geometryOf(editor.layer), properties } });
    } else {
      // Only what changed: the API writes just the members sent, and If-Match refuses a stale version.
      const original = editor.original.properties;
      const changed = Object.fromEntries(
        Object.entries(properties).filter(([name, value]) => String(value) !== String(original[name])),
      );
      const body = { type: "Feature", properties: changed };
      if (editor.dirty) body.geometry = geometryOf(editor.layer);
      result = await api("PATCH", `${urls.areas}${editor.areaId}/`, { body, ifMatch: editor.etag });
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
      showProblem(result.data && result.data.geometry);
      return;
    }
    const feature = result.data;
    closeEditor();
    putArea(feature);
    renderAreas();
    say(`Saved “${feature.properties.name}”.`, "ok");
    if (feature.properties.index.status === "pending") watchIndex(feature.id);
  });

  async function deleteArea() {
    const editor = state.editor;
    const result = await api("DELETE", `${urls.areas}${editor.areaId}/`, { ifMatch: editor.etag });
    if (result.status === 412) {
      byId("confirm-delete").hidden = true;
      byId("stale").hidden = false;
      return;
    }
    if (!result.ok) {
      showErrors(areaForm, result.data);
      return;
    }
    const name = editor.original.properties.name;
    const id = editor.areaId;
    closeEditor();
    removeArea(id);
    renderAreas();
    say(`Deleted “${name}”.`, "ok");
  }

  byId("draw-area").addEventListener("click", startNewArea);

  // ---------------------------------------------------------------------------------------------- the lookup

  let lookupMarker = null;

  map.on("click", (event) => {
    // Clicks while drawing or editing place and move corners; they are not questions.
    if (state.editor || map.pm.globalDrawModeEnabled()) return;
    runLookup(event.latlng.wrap());
  });

  byId("include-mine").addEventListener("change", () => {
    if (state.lookupPoint) runLookup(state.lookupPoint);
  });

  async function runLookup(point) {
    state.lookupPoint = point;
    const mine = byId("include-mine").checked;
    const lat = point.lat.toFixed(6);
    const lng = point.lng.toFixed(6);
    if (lookupMarker) map.removeLayer(lookupMarker);
    lookupMarker = L.circleMarker(point, { radius: 6, color: "#111827", weight: 2, fillColor: "#facc15", fillOpacity: 1, pmIgnore: true }).addTo(map);
    showTab("lookup");
    const output = byId("lookup-result");
    output.replaceChildren(h("p", {}, "Asking…"));
    const url = mine ? `${urls.lookupMine}?lat=${lat}&lng=${lng}&include_mine=true` : `${urls.lookup}?lat=${lat}&lng=${lng}`;
    const result = await api("GET", url);
    if (state.lookupPoint !== point) return; // a newer click answered meanwhile
    if (!result.ok) {
      output.replaceChildren(h("p", { class: "error" }, `The lookup failed: ${messagesOf(result.data)}`));
      return;
    }
    const found = result.data.results;
    const heading = h(
      "p",
      { class: "where" },
      `At ${lat}, ${lng} (latitude, longitude): `,
      found.length ? `${found.length} ${found.length === 1 ? "area" : "areas"}, cheapest first.` : `no area${mine ? "" : " in public lookups"}.`,
    );
    const items = found.map((item) => {
      const own = state.areas.has(item.id);
      const provider = state.providers.get(item.provider.id);
      return h(
        "li",
        {},
        h("strong", {}, item.name),
        ` — ${item.provider.name} · ${item.price} ${item.currency} `,
        own ? h("span", { class: "badge" }, "yours") : null,
        provider && !provider.approved ? h("span", { class: "badge warn" }, "not public yet") : null,
        own ? h("button", { type: "button", class: "link-button", "data-open": item.id }, "Edit") : null,
      );
    });
    const unapprovedAreas = [...state.areas.values()].some((feature) => {
      const provider = state.providers.get(feature.properties.provider);
      return provider && !provider.approved;
    });
    output.replaceChildren(
      ...[
        heading,
        items.length ? h("ol", { class: "lookup-results" }, items) : null,
        !mine && unapprovedAreas
          ? h("p", { class: "hint" }, "Areas of your unapproved providers are not in public lookups: tick the box above to include them.")
          : null,
      ].filter(Boolean),
    );
    highlight(found.map((item) => item.id).filter((id) => state.areas.has(id)));
  }

  byId("lookup-result").addEventListener("click", (event) => {
    const open = event.target.closest("[data-open]");
    if (open) openArea(Number(open.dataset.open));
  });

  // --------------------------------------------------------------------------------------- import and download

  const importForm = byId("import-form");

  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(importForm);
    const file = byId("import-file").files[0];
    if (!file) {
      showErrors(importForm, { detail: "Choose a GeoJSON file first." });
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(await file.text());
    } catch (error) {
      showErrors(importForm, { detail: `${file.name} is not JSON: ${error.message}` });
      return;
    }
    const features =
      parsed && parsed.type === "FeatureCollection" && Array.isArray(parsed.features)
        ? parsed.features
        : parsed && parsed.type === "Feature"
          ? [parsed]
          : null;
    if (!features) {
      showErrors(importForm, { detail: `${file.name} is not a GeoJSON FeatureCollection.` });
      return;
    }
    const fallbackProvider = Number(byId("import-provider").value);
    const summary = h("p", { class: "summary" });
    const list = h("ol", { class: "import-results" });
    byId("import-report").replaceChildren(summary, list);
    let imported = 0;
    for (const [index, feature] of features.entries()) {
      summary.textContent = `Importing feature ${index + 1} of ${features.length}…`;
      const properties = feature && typeof feature.properties === "object" && feature.properties ? feature.properties : {};
      const provider = state.providers.has(Number(properties.provider)) ? Number(properties.provider) : fallbackProvider;
      const body = { ...feature, properties: { ...properties, provider } };
      let result = await api("POST", urls.areas, { body });
      if (result.status === 429) {
        // Writes are rate limited per user: wait as told, once.
        summary.textContent = `Waiting ${result.retryAfter || 5} s for the rate limit…`;
        await new Promise((resolve) => setTimeout(resolve, (result.retryAfter || 5) * 1000));
        result = await api("POST", urls.areas, { body });
      }
      const label = `Feature ${index + 1}${properties.name ? ` “${properties.name}”` : ""}: `;
      if (result.ok) {
        imported += 1;
        putArea(result.data);
        if (result.data.properties.index.status === "pending") watchIndex(result.data.id);
        list.append(h("li", { class: "imported" }, label, h("strong", {}, "imported"), ` as area ${result.data.id}.`));
      } else {
        list.append(h("li", { class: "refused" }, label, h("strong", {}, "refused"), ` — ${messagesOf(result.data)}`));
      }
    }
    const refused = features.length - imported;
    summary.textContent = `Imported ${imported} of ${features.length} ${features.length === 1 ? "feature" : "features"}; ${refused} refused.`;
    renderAreas();
    if (imported) fitToAreas();
  });

  async function fullFeatures(provider) {
    // A page carries at most so many positions of full geometry: when one is too heavy, ask for smaller pages.
    for (let size = DOWNLOAD_PAGE_SIZE; ; size = Math.max(1, Math.floor(size / 4))) {
      const page = await allPages(`${urls.areas}?provider=${provider.id}&page_size=${size}`);
      if (page.ok) return page.items;
      if (size === 1 || page.result.status !== 400) throw new Error(messagesOf(page.result.data));
    }
  }

  byId("download").addEventListener("click", async () => {
    say("Preparing the download…");
    const features = [];
    try {
      for (const provider of state.providers.values()) {
        for (const feature of await fullFeatures(provider)) {
          const { provider: owner, name, price, currency } = feature.properties;
          features.push({ type: "Feature", id: feature.id, geometry: feature.geometry, properties: { provider: owner, name, price, currency } });
        }
      }
    } catch (error) {
      say(`The download failed: ${error.message}`, "error");
      return;
    }
    const blob = new Blob([JSON.stringify({ type: "FeatureCollection", features })], { type: "application/geo+json" });
    const link = h("a", { href: URL.createObjectURL(blob), download: "service-areas.geojson" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    say(`Downloaded ${features.length} ${features.length === 1 ? "area" : "areas"}.`, "ok");
  });

  // ------------------------------------------------------------------------------------------------------ start

  (async () => {
    say("Loading your providers and areas…");
    await loadProviders();
    await loadAreas();
    fitToAreas();
    const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
    if (state.providers.size) {
      say(`Loaded ${count(state.providers.size, "provider", "providers")} and ${count(state.areas.size, "area", "areas")}.`);
    } else {
      say("Welcome! Create your first provider to start drawing its service areas.");
      showTab("providers");
    }
  })();
})();
