/* The Providers tab: the user's providers (kept in state.providers), their list, and the form that creates one or
   edits one (a PATCH of what changed, with If-Match); also the provider menus of the other forms.

   Exports: loadProviders(), providerOptions(select, { all }), initProviders(). */

import { renderAreas } from "./areas.js";
import { clearErrors, messagesOf, showErrors } from "./errors.js";
import { fitToProviderAreas } from "./map.js";
import { api, byId, config, h, say, showTab, urls } from "./page.js";
import { state } from "./state.js";

const FIELDS = ["name", "email", "phone_number", "language", "currency"];
const STALE_PROVIDER =
  "This provider was changed elsewhere since you opened it, so your change was not saved. " +
  "Cancel and open it again to see the current version.";

let editing = null; // { id, etag, original } while an existing provider is in the form

export async function loadProviders() {
  const page = await api.allPages(`${urls.providers}?owner=${config.user.id}&page_size=500`);
  if (!page.ok) {
    say(`Your providers could not be loaded: ${messagesOf(page.result.data)}`, "error");
    return;
  }
  state.providers = new Map(page.items.map((provider) => [provider.id, provider]));
  renderProviders();
}

// Fills a <select> with the providers, keeping its choice when that is still there.
export function providerOptions(select, { all = false } = {}) {
  const chosen = select.value;
  select.replaceChildren(
    ...(all ? [h("option", { value: "" }, "All my providers")] : []),
    ...[...state.providers.values()].map((provider) =>
      h("option", { value: provider.id }, `${provider.name} (${provider.currency})`),
    ),
  );
  if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
}

function providerItem(provider) {
  return h(
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
    h(
      "div",
      { class: "meta" },
      `${provider.currency} · ${provider.language} · ${provider.email} · ${provider.phone_number}`,
    ),
    provider.approved ? null : h("p", { class: "note" }, "Its areas are not in public lookups until staff approve it."),
    h(
      "div",
      { class: "row-actions" },
      h("button", { type: "button", "data-edit-provider": provider.id }, "Edit"),
      h("button", { type: "button", "data-show-areas": provider.id }, "Show its areas"),
    ),
  );
}

function renderProviders() {
  const list = byId("provider-list");
  list.replaceChildren(...[...state.providers.values()].map(providerItem));
  if (!state.providers.size) list.replaceChildren(h("li", { class: "empty" }, "You have no provider yet."));
  providerOptions(byId("area-filter"), { all: true });
  providerOptions(byId("area-provider"));
  providerOptions(byId("import-provider"));
  document.querySelector("#panel-areas .no-providers").hidden = state.providers.size > 0;
}

function fillCodes(select, choices) {
  select.replaceChildren(...choices.map(([code, name]) => h("option", { value: code }, `${code} · ${name}`)));
}

async function openProviderForm(id) {
  const form = byId("provider-form");
  clearErrors(form);
  editing = null;
  const fields = { name: "", email: "", phone_number: "", language: "en", currency: "USD" };
  if (id) {
    const result = await api.request("GET", `${urls.providers}${id}/`);
    if (!result.ok) {
      say(`The provider could not be loaded: ${messagesOf(result.data)}`, "error");
      return;
    }
    editing = { id, etag: result.etag, original: result.data };
    for (const name of Object.keys(fields)) fields[name] = result.data[name];
  }
  for (const [name, value] of Object.entries(fields)) form.elements[name].value = value;
  byId("provider-form-title").textContent = id ? `Edit ${fields.name}` : "New provider";
  form.hidden = false;
  byId("new-provider").hidden = true;
  form.elements.name.focus();
}

function closeProviderForm() {
  byId("provider-form").hidden = true;
  byId("new-provider").hidden = false;
  editing = null;
}

async function saveProvider(event) {
  event.preventDefault();
  const form = byId("provider-form");
  const values = {};
  for (const name of FIELDS) values[name] = form.elements[name].value.trim();
  const submit = form.querySelector("[type=submit]");
  submit.disabled = true;
  let result;
  if (editing) {
    const changed = Object.fromEntries(
      Object.entries(values).filter(([name, value]) => value !== editing.original[name]),
    );
    result = await api.request("PATCH", `${urls.providers}${editing.id}/`, { body: changed, ifMatch: editing.etag });
  } else {
    result = await api.request("POST", urls.providers, { body: values });
  }
  submit.disabled = false;
  if (result.status === 412) {
    showErrors(form, { detail: STALE_PROVIDER });
    return;
  }
  if (!result.ok) {
    showErrors(form, result.data);
    return;
  }
  const provider = result.data;
  state.providers.set(provider.id, provider);
  closeProviderForm();
  renderProviders();
  for (const feature of state.areas.values()) {
    if (feature.properties.provider === provider.id) feature.properties.currency = provider.currency;
  }
  renderAreas();
  say(
    provider.approved
      ? `Saved ${provider.name}.`
      : `Saved ${provider.name}. It is not approved yet: public lookups leave its areas out until staff approve it.`,
    "ok",
  );
}

export function initProviders() {
  fillCodes(byId("provider-language"), config.languages);
  fillCodes(byId("provider-currency"), config.currencies);
  const form = byId("provider-form");
  form.addEventListener("submit", saveProvider);
  form.querySelector("[data-action=cancel]").addEventListener("click", closeProviderForm);
  byId("new-provider").addEventListener("click", () => openProviderForm(null));
  byId("provider-list").addEventListener("click", (event) => {
    const edit = event.target.closest("[data-edit-provider]");
    if (edit) openProviderForm(Number(edit.dataset.editProvider));
    const show = event.target.closest("[data-show-areas]");
    if (show) {
      byId("area-filter").value = show.dataset.showAreas;
      renderAreas();
      showTab("areas");
      fitToProviderAreas(Number(show.dataset.showAreas));
    }
  });
}
