// esbuild plugins for serverless-esbuild (custom.esbuild.plugins in serverless.yml; it require()s
// this file, hence CommonJS). bench/bundles.ts loads the same file, so the bench measures the
// bundles that ship.
'use strict';

const { basename, extname } = require('node:path');

// With code splitting, every function's lazy modules and shared code become chunk files. esbuild
// builds each function on its own into the same functions/ folder, and chunk names are only
// content hashes: left as they are, every zip would carry every function's chunks. Under
// functions/<name>.chunks/ they belong to one function, and serverless-esbuild leaves them out of
// the other zips as it does <name>.js.map (a file named like another function's bundle plus a
// dot is that function's). test/integration/serverless-package.test.ts checks each zip.
const chunksBesideTheirFunction = {
  name: 'chunks-beside-their-function',
  setup(build) {
    const [entry] = Array.isArray(build.initialOptions.entryPoints) ? build.initialOptions.entryPoints : [];
    const path = typeof entry === 'string' ? entry : entry?.in;
    if (typeof path !== 'string') return;
    build.initialOptions.chunkNames = `${basename(path, extname(path))}.chunks/[name]-[hash]`;
  },
};

module.exports = [chunksBesideTheirFunction];
