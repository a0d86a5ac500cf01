'use strict';
/**
 * A separate Node process that runs one download, for the crash/resume and cross-process lock
 * tests. argv[2]: userData root; argv[3]: the DownloadConfig as JSON. Prints one JSON line per
 * progress call ({"progress": downloaded, "total": n}) and a last line {"ok": record} or
 * {"error": {name, message, details}}.
 */
const g = require('../..');

const [root, configJson] = process.argv.slice(2);
g.configure({ userDataPath: root });
const config = JSON.parse(configJson);
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
g.modelManager
  .downloadModel({ ...config, onProgress: (d, total) => print({ progress: d, total }) })
  .then((info) => print({ ok: info }))
  .catch((e) => {
    print({ error: { name: e.name, message: e.message, details: e.details } });
    process.exitCode = 1;
  });
