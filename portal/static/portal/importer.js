/* GeoJSON files in and out (the Areas tab's "GeoJSON files"): importing a Feature or FeatureCollection feature by
   feature, each a POST of its own with a report line (once waiting out the write rate limit), and downloading all
   the user's areas, with full geometry, as one FeatureCollection.

   Exports: initImporter(). */

import { putArea, renderAreas, watchIndex } from "./areas.js";
import { clearErrors, messagesOf, showErrors } from "./errors.js";
import { fitToAreas } from "./map.js";
import { api, byId, h, say, urls } from "./page.js";
import { state } from "./state.js";

const DOWNLOAD_PAGE_SIZE = 100;
const RATE_LIMIT_WAIT_S = 5; // when a 429 names no Retry-After

// A file's features: a FeatureCollection's, a lone Feature, or null for anything else.
function featuresOf(parsed) {
  if (parsed && parsed.type === "FeatureCollection" && Array.isArray(parsed.features)) return parsed.features;
  if (parsed && parsed.type === "Feature") return [parsed];
  return null;
}

async function importFile(event) {
  event.preventDefault();
  const importForm = byId("import-form");
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
  const features = featuresOf(parsed);
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
    const given = feature && typeof feature.properties === "object" && feature.properties;
    const properties = given || {};
    const provider = state.providers.has(Number(properties.provider)) ? Number(properties.provider) : fallbackProvider;
    const body = { ...feature, properties: { ...properties, provider } };
    let result = await api.request("POST", urls.areas, { body });
    if (result.status === 429) {
      // Writes are rate limited per user: wait as told, once.
      const wait = result.retryAfter || RATE_LIMIT_WAIT_S;
      summary.textContent = `Waiting ${wait} s for the rate limit…`;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      result = await api.request("POST", urls.areas, { body });
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
  const noun = features.length === 1 ? "feature" : "features";
  summary.textContent = `Imported ${imported} of ${features.length} ${noun}; ${refused} refused.`;
  renderAreas();
  if (imported) fitToAreas();
}

// A provider's areas with full geometry. A page carries at most so many positions of full geometry: when one is
// too heavy (400), ask for smaller pages.
async function fullFeatures(provider) {
  for (let size = DOWNLOAD_PAGE_SIZE; ; size = Math.max(1, Math.floor(size / 4))) {
    const page = await api.allPages(`${urls.areas}?provider=${provider.id}&page_size=${size}`);
    if (page.ok) return page.items;
    if (size === 1 || page.result.status !== 400) throw new Error(messagesOf(page.result.data));
  }
}

async function download() {
  say("Preparing the download…");
  const features = [];
  try {
    for (const provider of state.providers.values()) {
      for (const feature of await fullFeatures(provider)) {
        const { provider: owner, name, price, currency } = feature.properties;
        const properties = { provider: owner, name, price, currency };
        features.push({ type: "Feature", id: feature.id, geometry: feature.geometry, properties });
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
}

export function initImporter() {
  byId("import-form").addEventListener("submit", importFile);
  byId("download").addEventListener("click", download);
}
