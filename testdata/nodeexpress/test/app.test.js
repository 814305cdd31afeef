const { test } = require("node:test");
const assert = require("node:assert");
const request = require("supertest");
const app = require("../app");

test("health answers ok", async () => {
  const res = await request(app).get("/health");
  assert.strictEqual(res.status, 200);
  assert.strictEqual(res.body.status, "ok");
});

test("the root says hello", async () => {
  const res = await request(app).get("/");
  assert.match(res.text, /hello from nodeexpress/);
});
