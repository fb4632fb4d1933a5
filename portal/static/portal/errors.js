/* How the API's refusals are shown: put into words (messagesOf), under the form fields they name and above the form
   for the rest (showErrors, clearErrors), and the spot of an invalid geometry read out of GEOS's message
   (geometryProblem; draw.js marks it on the map). Failures outside a form go to the status line (page.js `say`).

   Exports: messagesOf(data), showErrors(form, data), clearErrors(form), geometryProblem(messages). */

// GEOS names the spot of an invalid geometry: "Invalid geometry: Self-intersection[0.5 0.5]." (x is longitude).
const GEOS_LOCATION = /^Invalid geometry: ([^[]+)\[(-?[\d.eE+-]+) (-?[\d.eE+-]+)\]/;

// An API error body as one line of text: DRF's {"field": ["message"]}, {"detail": "..."}, lists, or plain values.
export function messagesOf(value) {
  if (Array.isArray(value)) return value.map(messagesOf).join(" ");
  if (value && typeof value === "object") {
    if ("detail" in value) return messagesOf(value.detail); // quota errors' other members are for programs
    return Object.entries(value)
      .map(([key, inner]) => (key === "non_field_errors" ? messagesOf(inner) : `${key}: ${messagesOf(inner)}`))
      .join(" ");
  }
  return String(value);
}

export function clearErrors(form) {
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

// An API error body shown where it belongs: each field's messages under that field (`.field[data-field=name]`
// with its `.field-error`), the rest in the form's `.form-errors`; the first invalid input gets the focus.
export function showErrors(form, data) {
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

// The first of a geometry's error messages that names a spot: { reason, lat, lng }, or null.
export function geometryProblem(messages) {
  for (const message of [].concat(messages || [])) {
    const match = GEOS_LOCATION.exec(message);
    if (match) return { reason: match[1].trim(), lat: Number(match[3]), lng: Number(match[2]) };
  }
  return null;
}
