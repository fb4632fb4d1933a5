/* What the page has loaded and what is open, shared by the modules that show it. providers.js loads `providers`;
   areas.js loads `areas` and sets `highlighted` (editor.js and providers.js update an area they changed); editor.js
   opens and closes `editor`.

   Exports: state. */

export const state = {
  providers: new Map(), // id -> provider, as the API returns it
  areas: new Map(), // id -> Feature (simplified geometry, from the list)
  highlighted: new Set(), // ids of the areas the last lookup found
  editor: null, // the area open in the editor: { areaId (null for a new one), etag, original, dirty }, or null
};
