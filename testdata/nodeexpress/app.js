const express = require("express");
const morgan = require("morgan");

const app = express();
app.use(morgan("tiny"));

app.get("/health", (req, res) => {
  res.json({ status: "ok", node: process.version, env: process.env.NODE_ENV || "" });
});

app.get("/", (req, res) => {
  res.type("text").send("hello from nodeexpress\n");
});

module.exports = app;
