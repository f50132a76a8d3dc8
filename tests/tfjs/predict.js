'use strict';
// node predict.js MODEL_DIR X.npy Y.npy
// Loads a TF.js layers model (model.json + shards) from disk and writes model.predict(X) as float32 .npy.
const tf = require('@tensorflow/tfjs');
const {fileLoadHandler} = require('./tfjs_file_io');
const {readNpy, writeNpy} = require('./npy');

async function main() {
  const [modelDir, xPath, yPath] = process.argv.slice(2);
  if (!yPath) {
    console.error('usage: node predict.js MODEL_DIR X.npy Y.npy');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  const model = await tf.loadLayersModel(fileLoadHandler(modelDir));
  const x = readNpy(xPath);
  const xt = tf.tensor(Float32Array.from(x.data), x.shape, 'float32');
  const t0 = Date.now();
  let y = model.predict(xt, {batchSize: 32});
  if (Array.isArray(y)) y = y[0];
  const data = await y.data();
  writeNpy(yPath, Float32Array.from(data), y.shape);
  console.log(`predict: ${modelDir} input [${x.shape}] -> [${y.shape}] in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
}

main().catch(e => { console.error(`predict.js: error: ${e.stack || e}`); process.exit(1); });
