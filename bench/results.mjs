// Results files of the benchmarks, written by the script that measured them and headed by the
// commit measured and the machine it ran on: bench/results-<name>-<platform>-<arch>.md
// (the download benchmark's is bench/results-<platform>-<arch>.md).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

function git(args) {
  try {
    return execFileSync('git', args, { cwd: benchDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** `<sha> (<subject>)`, plus a note when files other than results files were modified. */
export function measuredCommit() {
  const sha = git(['rev-parse', 'HEAD']);
  if (!sha) return 'unknown (not a git checkout)';
  const dirty = (git(['status', '--porcelain', '--untracked-files=no']) || '')
    .split('\n')
    .filter((l) => l && !/bench\/results-[^/]*\.md$/.test(l));
  const subject = git(['log', '-1', '--format=%s']);
  return `${sha.slice(0, 12)} (${subject})${dirty.length ? `, with uncommitted changes to ${dirty.length} file(s)` : ''}`;
}

export function machine() {
  const cpus = os.cpus();
  const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  return `Node ${process.version}, ${cpus.length} CPUs (${cpus[0] ? cpus[0].model.trim() : 'unknown'}), ${os.platform()} ${os.release()}, load average (1, 5, 15 min) ${load}`;
}

/** Writes the results file of `name` (null for the download benchmark): title, commit, machine, command, body. */
export function writeResults(name, title, body) {
  const file = path.join(benchDir, `results-${name ? `${name}-` : ''}${os.platform()}-${os.arch()}.md`);
  const cmd = `node bench/${path.basename(process.argv[1])}${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const text = [
    `# ${title}`,
    '',
    `Written by \`${cmd}\` on ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `- Commit measured: ${measuredCommit()}`,
    `- Machine: ${machine()}`,
    '',
    body.trim(),
    '',
  ].join('\n');
  fs.writeFileSync(file, text);
  console.log(`written to ${path.relative(process.cwd(), file)}`);
  return file;
}
