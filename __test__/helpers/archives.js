'use strict';
/**
 * Builds release archives for the provisioning tests: .zip (stored or deflated entries, unix modes,
 * symlinks) and .tar.gz (ustar: files, folders, symlinks), written byte by byte so a test can also
 * make the hostile ones (`../` names, links leaving the folder, bombs). Node built-ins only.
 */

const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

// The fake programs' PNG writer has the CRC-32 zip uses too.
const { crc32 } = require('../fixtures/fake-sd/lib/png.js');

/**
 * Entries: `{ name, data, mode = 0o644 }`, `{ name, symlink: target }`, `{ name: 'dir/', dir: true }`.
 * `deflate` (true) compresses file entries.
 */
function zip(entries, { deflate = true } = {}) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    let mode;
    let raw;
    if (e.symlink !== undefined) {
      mode = 0o120777;
      raw = Buffer.from(e.symlink);
    } else if (e.dir) {
      mode = 0o40755;
      raw = Buffer.alloc(0);
    } else {
      mode = 0o100000 | (e.mode ?? 0o644);
      raw = Buffer.from(e.data);
    }
    const method = deflate && e.symlink === undefined && !e.dir ? 8 : 0;
    const body = method === 8 ? zlib.deflateRawSync(raw) : raw;
    const crc = crc32(raw);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

function tarHeader(name, { size = 0, mode = 0o644, type = '0', linkname = '' }) {
  const h = Buffer.alloc(512);
  const put = (str, off, len) => Buffer.from(str).copy(h, off, 0, len);
  put(name, 0, 100);
  h.write(mode.toString(8).padStart(7, '0') + '\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  put(linkname, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** Entries as for zip(); a .tar.gz buffer. */
function tarGz(entries) {
  const parts = [];
  for (const e of entries) {
    if (e.symlink !== undefined) {
      parts.push(tarHeader(e.name, { type: '2', linkname: e.symlink, mode: 0o777 }));
    } else if (e.dir) {
      parts.push(tarHeader(e.name, { type: '5', mode: 0o755 }));
    } else {
      const data = Buffer.from(e.data);
      parts.push(tarHeader(e.name, { size: data.length, mode: e.mode ?? 0o644 }), data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return zlib.gzipSync(Buffer.concat(parts));
}

/** Every file under `dir` as zip()/tarGz() entries, under `prefix`; programs keep their mode. */
function dirEntries(dir, prefix = '') {
  const out = [];
  const walk = (abs, rel) => {
    for (const name of fs.readdirSync(abs).sort()) {
      const a = path.join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.statSync(a);
      if (st.isDirectory()) walk(a, r);
      else out.push({ name: prefix + r, data: fs.readFileSync(a), mode: st.mode & 0o777 });
    }
  };
  walk(dir, '');
  return out;
}

module.exports = { zip, tarGz, dirEntries, crc32 };
