'use strict';
// File-system IOHandlers for TF.js layers models (what tfjs-node's file:// does, without
// tfjs-node's native binary): load() reads model.json + its shards, save() writes
// model.json + weights.bin.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function toArrayBuffer(buf) {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

function fileLoadHandler(modelPath) {
  const jsonPath = fs.statSync(modelPath).isDirectory() ? path.join(modelPath, 'model.json') : modelPath;
  const dir = path.dirname(jsonPath);
  return {
    load: async () => {
      const mj = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      if (mj.modelTopology == null) {
        throw new Error(`${jsonPath} has no modelTopology (weights only): merge a topology first, ` +
                        'e.g. tests/python/mobilenet_v2_topology.py --merge');
      }
      const weightSpecs = [];
      const buffers = [];
      for (const group of mj.weightsManifest || []) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const artifacts = {
        modelTopology: mj.modelTopology,
        format: mj.format,
        generatedBy: mj.generatedBy,
        convertedBy: mj.convertedBy,
        weightSpecs,
        weightData: toArrayBuffer(Buffer.concat(buffers)),
      };
      if (mj.trainingConfig != null) artifacts.trainingConfig = mj.trainingConfig;
      if (mj.userDefinedMetadata != null) artifacts.userDefinedMetadata = mj.userDefinedMetadata;
      return artifacts;
    },
  };
}

function fileSaveHandler(dir) {
  return {
    save: async (artifacts) => {
      let data = artifacts.weightData;
      if (Array.isArray(data)) data = tf.io.concatenateArrayBuffers(data);
      fs.mkdirSync(dir, {recursive: true});
      const mj = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{paths: ['weights.bin'], weights: artifacts.weightSpecs}],
      };
      if (artifacts.trainingConfig != null) mj.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata != null) mj.userDefinedMetadata = artifacts.userDefinedMetadata;
      const tmpW = path.join(dir, `.weights.bin.tmp-${process.pid}`);
      const tmpJ = path.join(dir, `.model.json.tmp-${process.pid}`);
      fs.writeFileSync(tmpW, Buffer.from(data));
      fs.writeFileSync(tmpJ, JSON.stringify(mj));
      fs.renameSync(tmpW, path.join(dir, 'weights.bin'));
      fs.renameSync(tmpJ, path.join(dir, 'model.json'));
      return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts)};
    },
  };
}

module.exports = {fileLoadHandler, fileSaveHandler};
