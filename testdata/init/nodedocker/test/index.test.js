const { test } = require("node:test");
const assert = require("node:assert");

test("express is installed where the lock says", () => {
  const express = require("express");
  assert.strictEqual(typeof express, "function");
  assert.match(require.resolve("express"), /node_modules\/express\/index\.js$/);
});
