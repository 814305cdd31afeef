// Runs esbuild's native binary for this machine: the optional package of
// the image's platform must be the one installed.
const esbuild = require("esbuild");

const out = esbuild.transformSync("const answer: number = 42; console.log(answer)", { loader: "ts" });
console.log(out.code.trim());
console.log(`esbuild ${esbuild.version} on ${process.platform}-${process.arch}`);
