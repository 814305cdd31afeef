const ms = require("ms");

module.exports = (name) => `hello ${name}, in ${ms(90000)}`;
