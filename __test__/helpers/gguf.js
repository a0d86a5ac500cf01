'use strict';
/** Builds GGUF v2/v3 files in tests (header only, plus optional zero tensor data). */

const TYPES = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 };

function str(s) {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b]);
}

function scalar(type, v) {
  const b = Buffer.alloc(8);
  switch (type) {
    case 'u8': b.writeUInt8(v); return b.subarray(0, 1);
    case 'i8': b.writeInt8(v); return b.subarray(0, 1);
    case 'u16': b.writeUInt16LE(v); return b.subarray(0, 2);
    case 'i16': b.writeInt16LE(v); return b.subarray(0, 2);
    case 'u32': b.writeUInt32LE(v); return b.subarray(0, 4);
    case 'i32': b.writeInt32LE(v); return b.subarray(0, 4);
    case 'f32': b.writeFloatLE(v); return b.subarray(0, 4);
    case 'bool': b.writeUInt8(v ? 1 : 0); return b.subarray(0, 1);
    case 'u64': b.writeBigUInt64LE(BigInt(v)); return b;
    case 'i64': b.writeBigInt64LE(BigInt(v)); return b;
    case 'f64': b.writeDoubleLE(v); return b;
    case 'string': return str(v);
    default: throw new Error(`unknown type ${type}`);
  }
}

function u32(n) { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; }
function u64(n) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; }

/**
 * kv: array of [key, type, value] where type is a scalar type or ['array', elemType].
 * tensors: array of { name, dims, type, offset }.
 */
function buildGguf({ version = 3, kv = [], tensors = [], dataBytes = 0 } = {}) {
  const parts = [Buffer.from('GGUF'), u32(version), u64(tensors.length), u64(kv.length)];
  for (const [key, type, value] of kv) {
    parts.push(str(key));
    if (Array.isArray(type)) {
      parts.push(u32(TYPES.array), u32(TYPES[type[1]]), u64(value.length));
      for (const v of value) parts.push(scalar(type[1], v));
    } else {
      parts.push(u32(TYPES[type]), scalar(type, value));
    }
  }
  for (const t of tensors) {
    parts.push(str(t.name), u32(t.dims.length));
    for (const d of t.dims) parts.push(u64(d));
    parts.push(u32(t.type || 0), u64(t.offset || 0));
  }
  let header = Buffer.concat(parts);
  if (dataBytes > 0) {
    const aligned = Math.ceil(header.length / 32) * 32;
    header = Buffer.concat([header, Buffer.alloc(aligned - header.length + dataBytes)]);
  }
  return header;
}

/** A small LLM-like GGUF with the metadata fields the contract extracts. */
function llamaGguf(overrides = {}) {
  return buildGguf({
    kv: [
      ['general.architecture', 'string', 'llama'],
      ['general.name', 'string', overrides.name || 'Tiny Llama'],
      ['general.file_type', 'u32', 7],
      ['llama.block_count', 'u32', overrides.blockCount ?? 22],
      ['llama.context_length', 'u32', overrides.contextLength ?? 2048],
      ['llama.embedding_length', 'u32', 2048],
      ['llama.attention.head_count', 'u32', 32],
      ['llama.attention.layer_norm_rms_epsilon', 'f32', 1e-5],
      ['llama.rope.freq_base', 'f32', 10000],
      ['tokenizer.ggml.tokens', ['array', 'string'], ['<s>', '</s>', 'hello']],
      ['tokenizer.ggml.scores', ['array', 'f32'], [0, 0, -1.5]],
    ],
    tensors: [{ name: 'token_embd.weight', dims: [8, 3], type: 0, offset: 0 }],
    dataBytes: 96,
  });
}

module.exports = { buildGguf, llamaGguf };
