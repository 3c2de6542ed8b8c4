"use strict";
// is-number comes from the pack's built Node.js environment (node_modules from package-lock.json).
const isNumber = require("is-number");

function run({ value }) {
  return { value, is_number: isNumber(value) };
}

module.exports = { run };
