/* The page around the panels: its settings (the JSON the view renders into #portal-config: configuration travels
   as data, not as script, for the Content-Security-Policy), the API client made with them, the status line, the
   tabs, and small helpers to build and read elements.

   Exports: config, urls, api, byId(id), h(tag, attributes, ...children), say(text, kind), formatPrice(properties),
   showTab(name), initTabs(). */

import { createApi } from "./api.js";

export const config = JSON.parse(document.getElementById("portal-config").textContent);
export const urls = config.urls;
export const api = createApi({ csrfToken: config.csrfToken, loginUrl: urls.login });

export const byId = (id) => document.getElementById(id);

// An element with attributes (false, null and undefined leave one out) and children (nodes or text).
export function h(tag, attributes = {}, ...children) {
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

// The status line above the panels (role=status): kind is info, ok or error.
export function say(text, kind = "info") {
  const status = byId("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

export function formatPrice(properties) {
  return `${properties.price} ${properties.currency || ""}`.trim();
}

const TABS = ["areas", "providers", "lookup"];

export function showTab(name) {
  for (const tab of TABS) {
    const selected = tab === name;
    const button = byId(`tab-${tab}`);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    byId(`panel-${tab}`).hidden = !selected;
  }
}

// Tabs as ARIA describes them: a click selects one, the arrow keys move between them.
export function initTabs() {
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
}
