/* The provider portal's entry point: portal/templates/portal/app.html loads it as a module, after the classic
   scripts of Leaflet, leaflet-geoman and topojson-client. It wires the parts together, then loads the user's
   providers and areas.

   Everything goes through the public API (/api/v1/) with the session cookie and the CSRF header, so the server
   validates, limits and versions every change exactly as for any other client; the page only shows what it says.

   Where things are:
     page.js       settings from #portal-config, the API client, status line, tabs, element helper
     api.js        every request to the API, and what comes back (errors included)
     errors.js     API errors put into words and shown at the form fields they name
     state.js      what is loaded (providers, areas) and what is open (the editor)
     map.js        the map, its base map, the areas drawn on it
     geometry.js   shapes between GeoJSON and Leaflet
     areas.js      the areas table, loading areas, the lookup's highlight, index status polling
     providers.js  the Providers tab: list and form
     editor.js     the area editor's form: open, save, delete, stale versions
     draw.js       drawing and editing the shape on the map (leaflet-geoman), the invalid-spot marker
     lookup.js     the Lookup tab: click the map, see what the lookup answers
     importer.js   GeoJSON files in (import) and out (download)

   Exports nothing. */

import { initAreaList, loadAreas } from "./areas.js";
import { initEditor, openArea } from "./editor.js";
import { initImporter } from "./importer.js";
import { initLookup } from "./lookup.js";
import { fitToAreas } from "./map.js";
import { initTabs, say, showTab } from "./page.js";
import { initProviders, loadProviders } from "./providers.js";
import { state } from "./state.js";

const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;

initTabs();
initProviders();
initAreaList({ onOpen: openArea });
initEditor();
initLookup({ onOpen: openArea });
initImporter();

async function start() {
  say("Loading your providers and areas…");
  await loadProviders();
  await loadAreas();
  fitToAreas();
  if (state.providers.size) {
    const providers = count(state.providers.size, "provider", "providers");
    say(`Loaded ${providers} and ${count(state.areas.size, "area", "areas")}.`);
  } else {
    say("Welcome! Create your first provider to start drawing its service areas.");
    showTab("providers");
  }
}

start();
