const greet = require("greeter");

console.log(greet("workspace"));
