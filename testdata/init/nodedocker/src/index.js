const express = require("express");

const app = express();

app.get("/healthz", (req, res) => res.json({ ok: true }));
app.get("/", (req, res) => res.json({ app: "nodedocker", uid: process.getuid(), env: process.env.NODE_ENV }));

const port = Number(process.env.PORT || 3000);
app.listen(port, "0.0.0.0", () => console.log(`nodedocker on ${port}`));
