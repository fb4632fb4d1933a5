// Shape helpers of the area editor (portal/static/portal/geometry.js): `node --test portal/tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeShape, insideRing } from "../../static/portal/geometry.js";

const point = (lat, lng) => ({ lat, lng });
const square = (lat, lng, size) => [
  point(lat, lng),
  point(lat, lng + size),
  point(lat + size, lng + size),
  point(lat + size, lng),
];

test("a point inside a ring is inside, one outside or in its notch is not", () => {
  assert.equal(insideRing(point(0.5, 0.5), square(0, 0, 1)), true);
  assert.equal(insideRing(point(1.5, 0.5), square(0, 0, 1)), false);
  const notched = [point(0, 0), point(0, 3), point(3, 3), point(3, 2), point(1, 2), point(1, 1), point(3, 1), point(3, 0)];
  assert.equal(insideRing(point(2, 1.5), notched), false); // in the notch
  assert.equal(insideRing(point(2, 2.5), notched), true);
});

test("a shape is described by its parts, holes and corners", () => {
  const ringWithHole = [square(0, 0, 3), square(1, 1, 1)];
  assert.equal(describeShape([ringWithHole, [square(5, 5, 1)]]), "2 parts, 1 hole, 12 corners");
  assert.equal(describeShape([[square(0, 0, 1)]]), "1 part, 0 holes, 4 corners");
});
