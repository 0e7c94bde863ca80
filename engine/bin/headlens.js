#!/usr/bin/env node
// The engine CLI: `headlens info|forward|analyze|train|serve`. Built by `npm run build`.
'use strict';
const path = require('path');
const fs = require('fs');
const bundle = path.join(__dirname, '..', '..', 'dist', 'engine.js');
if (!fs.existsSync(bundle)) {
  process.stderr.write('headlens: the engine is not built yet (dist/engine.js missing); run `npm run build` first\n');
  process.exit(1);
}
require(bundle).main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(`headlens: internal error: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
