'use strict';
// node decode_jpeg.js IN.jpg OUT.npy : decodes a JPEG with the pure-JS jpeg-js to uint8 [H,W,3].
// Fallback for tests/python/make_flower_batch.py on machines without PIL.
const fs = require('fs');
const jpeg = require('jpeg-js');
const {writeNpy} = require('./npy');

const [inPath, outPath] = process.argv.slice(2);
if (!inPath || !outPath) { console.error('usage: node decode_jpeg.js IN.jpg OUT.npy'); process.exit(2); }
const img = jpeg.decode(fs.readFileSync(inPath), {useTArray: true, formatAsRGBA: false,
                                                   maxMemoryUsageInMB: 1024});
const {width, height, data} = img;
const ch = data.length / (width * height);
let rgb = data;
if (ch === 1) {
  rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i];
} else if (ch !== 3) {
  throw new Error(`${inPath}: unexpected ${ch} channels`);
}
writeNpy(outPath, new Uint8Array(rgb.buffer, rgb.byteOffset, width * height * 3), [height, width, 3]);
