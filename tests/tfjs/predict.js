'use strict';
// node predict.js MODEL_DIR X.npy Y.npy
// Loads a TF.js layers model (model.json + shards) from disk and writes model.predict(X) as float32 .npy.
const tf = require('@tensorflow/tfjs');
const {fileLoadHandler} = require('./tfjs_file_io');
const {readNpy, writeNpy} = require('./npy');

// TF.js 4.22 has none of Keras's random augmentation layers. They are the identity in inference,
// which is all predict() runs, so a TF.js user registers them as such to load a model that has
// them (as kerascpp's flowers model does): the same few lines as here.
const kInferenceIdentity = ['RandomFlip', 'RandomRotation', 'RandomZoom', 'RandomTranslation'];
for (const name of kInferenceIdentity) {
  class InferenceIdentity extends tf.layers.Layer {
    static get className() { return name; }
    constructor(config) { super(config); this.config = config; }
    call(inputs) { return Array.isArray(inputs) ? inputs[0] : inputs; }
    getConfig() { return Object.assign({}, super.getConfig(), this.config); }
  }
  try {
    tf.serialization.SerializationMap.getMap().classNameMap[name] || tf.serialization.registerClass(InferenceIdentity);
  } catch (e) {
    tf.serialization.registerClass(InferenceIdentity);
  }
}

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
