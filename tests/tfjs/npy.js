'use strict';
// Minimal .npy (format 1.0/2.0/3.0) reader/writer: little-endian float32/float64/int32/uint8, C order.
const fs = require('fs');

const DESCR = {'<f4': Float32Array, '<f8': Float64Array, '<i4': Int32Array, '|u1': Uint8Array,
               '<u1': Uint8Array, '<i8': BigInt64Array};

function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${path}: not a .npy file`);
  }
  const major = buf[6];
  let hlen, off;
  if (major === 1) { hlen = buf.readUInt16LE(8); off = 10; } else { hlen = buf.readUInt32LE(8); off = 12; }
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', off, off + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const order = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeM = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shapeM) throw new Error(`${path}: bad npy header ${header}`);
  if (order[1] === 'True') throw new Error(`${path}: fortran_order arrays are not supported`);
  const Ctor = DESCR[descr[1]];
  if (!Ctor) throw new Error(`${path}: unsupported dtype ${descr[1]}`);
  const shape = shapeM[1].split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const start = off + hlen;
  const bytes = buf.subarray(start, start + n * Ctor.BYTES_PER_ELEMENT);
  if (bytes.length !== n * Ctor.BYTES_PER_ELEMENT) throw new Error(`${path}: truncated data`);
  const data = new Ctor(n);
  new Uint8Array(data.buffer).set(bytes);  // copy: alignment
  return {data, shape, dtype: descr[1]};
}

function writeNpy(path, data, shape) {
  let descr;
  if (data instanceof Float32Array) descr = '<f4';
  else if (data instanceof Float64Array) descr = '<f8';
  else if (data instanceof Int32Array) descr = '<i4';
  else if (data instanceof Uint8Array) descr = '|u1';
  else throw new Error('writeNpy: unsupported array type');
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`writeNpy: shape ${shape} does not match ${data.length}`);
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(tmp, path);
}

module.exports = {readNpy, writeNpy};
