"use strict";
// Run by the environment build (testing.runners.checks): prints its results as JSON.
const { run } = require("../actions/is_number.js");

const cases = [
  ["42", true],
  ["4.2e1", true],
  ["forty-two", false],
  ["", false],
];
const tests = cases.map(([value, expected]) => {
  const actual = run({ value }).is_number;
  return {
    name: `is_number(${JSON.stringify(value)})`,
    status: actual === expected ? "passed" : "failed",
    message: actual === expected ? "" : `expected ${expected}, got ${actual}`,
  };
});
console.log(JSON.stringify({ tests }));
