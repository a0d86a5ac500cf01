'use strict';
/**
 * Terminal output of the command-line tool: byte and time formats, and progress that is a bar
 * redrawn in place on a terminal, occasional plain lines elsewhere (pipes, CI logs), or nothing.
 * Never colours: the same text reads the same in every terminal and log.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function bytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '?';
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${UNITS[i]}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function bar(fraction, width = 24) {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

/**
 * A progress display on `stream`. mode 'bar' redraws one line with `\r` (a new line per stage or
 * component), 'plain' prints a line at most every `plainEveryMs` and at each stage change,
 * 'none' prints nothing.
 */
class Progress {
  constructor(stream, mode, { plainEveryMs = 5000 } = {}) {
    this.stream = stream;
    this.mode = mode;
    this.plainEveryMs = plainEveryMs;
    this.line = null;
    this.lastPlain = 0;
    this.width = 0;
  }

  /** Starts a new labelled line (a component, a stage). */
  stage(text) {
    this.end();
    if (this.mode === 'none') return;
    this.stream.write(`${text}\n`);
  }

  /** Shows `text` as the current state of the running stage. */
  update(text, { force = false } = {}) {
    if (this.mode === 'none') return;
    if (this.mode === 'bar') {
      const pad = this.width > text.length ? ' '.repeat(this.width - text.length) : '';
      this.stream.write(`\r${text}${pad}`);
      this.width = text.length;
      this.line = text;
      return;
    }
    const now = Date.now();
    if (force || now - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = now;
      this.stream.write(`${text}\n`);
    }
  }

  /** Ends the current bar line, so the next output starts on its own line. */
  end() {
    if (this.mode === 'bar' && this.line !== null) this.stream.write('\n');
    this.line = null;
    this.width = 0;
  }
}

/** The one-line state of a download: bar, percentage, bytes, speed, ETA, current component. */
function downloadLine(downloaded, total, info) {
  const pct = total > 0 ? Math.floor((downloaded / total) * 100) : 0;
  const speed = info && info.bytesPerSecond ? `${bytes(info.bytesPerSecond)}/s` : '-';
  const eta = info && info.phase === 'done' ? 'done' : `ETA ${duration(info ? info.etaSeconds : null)}`;
  const phase = info && info.phase && info.phase !== 'downloading' && info.phase !== 'done' ? ` (${info.phase})` : '';
  return `${bar(total > 0 ? downloaded / total : 0)} ${String(pct).padStart(3)}%  ${bytes(downloaded)} / ${bytes(total)}  ${speed}  ${eta}${phase}`;
}

/** The one-line state of an image generation: stage, step bar, step count (when the stage has steps). */
function stepLine(step, total, stage, percentage) {
  const f = total > 0 ? step / total : Number.isFinite(percentage) ? percentage / 100 : 0;
  const steps = total > 0 ? `  step ${step}/${total}` : '';
  return `${stage.padEnd(9)} ${bar(f)} ${String(Math.floor(f * 100)).padStart(3)}%${steps}`;
}

module.exports = { Progress, bytes, duration, bar, downloadLine, stepLine };
