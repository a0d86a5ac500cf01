'use strict';
/** Simulated machine files and fake GPU tools for the systemInfo suites. */

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

function tempDir(prefix = 'genai-rs-system-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Writes a simulated machine: `ramGiB` total RAM (half of it available unless `availableGiB`),
 * and an NVIDIA GPU of `vramGiB` (none when null) with 1 GiB in use.
 */
function writeMachine(file, { ramGiB = 16, availableGiB, vramGiB = null, name, extra = {} } = {}) {
  const gpu =
    vramGiB === null
      ? { available: false }
      : {
          available: true,
          type: 'nvidia',
          name: name || `Simulated ${vramGiB} GB`,
          vram: vramGiB * GIB,
          vramAvailable: (vramGiB - 1) * GIB,
        };
  const machine = {
    simulated: true,
    description: 'test machine',
    memory: { total: ramGiB * GIB, available: (availableGiB === undefined ? ramGiB / 2 : availableGiB) * GIB },
    gpu,
    ...extra,
  };
  fs.writeFileSync(file, JSON.stringify(machine, null, 2));
  return machine;
}

/** An executable shell script `name` in `dir` that runs `body`. */
function fakeTool(dir, name, body) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

module.exports = { GIB, MIB, tempDir, writeMachine, fakeTool };
