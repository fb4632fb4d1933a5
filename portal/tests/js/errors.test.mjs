// How API refusals are put into words (portal/static/portal/errors.js): `node --test portal/tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { geometryProblem, messagesOf } from "../../static/portal/errors.js";

test("field errors are named by their field, general ones are not", () => {
  const refusal = { name: ["This field is required."], non_field_errors: ["Prices must be positive."] };
  assert.equal(messagesOf(refusal), "name: This field is required. Prices must be positive.");
});

test("a detail stands alone: the other members of quota errors are for programs", () => {
  const quota = { detail: "You have reached your limit of 2000 areas.", limit: 2000, used: 2000 };
  assert.equal(messagesOf(quota), "You have reached your limit of 2000 areas.");
});

test("nested lists and plain values become one line", () => {
  assert.equal(messagesOf([["a", "b"], "c"]), "a b c");
  assert.equal(messagesOf({ geometry: { coordinates: ["Too many positions."] } }), "geometry: coordinates: Too many positions.");
  assert.equal(messagesOf(null), "null");
  assert.equal(messagesOf(412), "412");
});

test("the spot GEOS names is read as latitude and longitude", () => {
  const problem = geometryProblem(["Invalid geometry: Self-intersection[13.25 52.45]."]);
  assert.deepEqual(problem, { reason: "Self-intersection", lat: 52.45, lng: 13.25 });
});

test("the first message naming a spot is taken, and messages naming none give nothing", () => {
  const messages = ["Too many positions.", "Invalid geometry: Ring Self-intersection[-1.5e-3 -0.5]."];
  assert.deepEqual(geometryProblem(messages), { reason: "Ring Self-intersection", lat: -0.5, lng: -0.0015 });
  assert.equal(geometryProblem("Invalid geometry: Too few points."), null);
  assert.equal(geometryProblem(undefined), null);
});
