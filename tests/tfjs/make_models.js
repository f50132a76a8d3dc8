'use strict';
// node make_models.js OUT_DIR
// Builds small models with tf.layers, gives every weight deterministic random non-trivial values
// (BatchNormalization moving statistics included), saves each as OUT_DIR/<name>/model.json +
// weights.bin (TF.js's own layers format, as model.save writes it) with a reference input
// X.npy and TF.js's prediction Y.npy, for the C++ loader tests.
//   mlp             Sequential Dense-relu / Dense-tanh / Dense-softmax
//   cnn             Functional: Conv2D, BatchNormalization, ReLU(max_value 6), ZeroPadding2D,
//                   DepthwiseConv2D (stride 2 valid; depth_multiplier 2 with bias), Add,
//                   GlobalAveragePooling2D, Dense softmax
//   nested          Sequential[ Functional "mobilenetv2_like" (InputLayer batch_input_shape,
//                   MobileNetV2 layer names), GlobalAveragePooling2D, Dropout, Dense(5, softmax) ]
//   layers17_seq1d  Sequential (issue 17): Conv1D dilated, same/strided and valid, LeakyReLU, ELU,
//                   MaxPooling1D, AveragePooling1D same, LayerNormalization, PReLU, GlobalMaxPooling1D
//   layers17_seq2d  Sequential: SeparableConv2D, UpSampling2D nearest, Cropping2D, Conv2DTranspose
//                   (same/2, valid/1), PReLU shared axes, GlobalAveragePooling1D after a Reshape
//   layers17_fn     Functional: Multiply (also broadcast, squeeze-and-excitation), Maximum, Minimum, Average,
//                   Concatenate, LayerNormalization, LeakyReLU, Conv2DTranspose
//   resize17        no model: X.npy and tf.image.resize{Bilinear,NearestNeighbor} with half-pixel
//                   centers (Keras's UpSampling2D bilinear / Resizing; TF.js's own layers differ)
//   text_lstm       Sequential Embedding -> LSTM -> Dense softmax (integer-valued X)
//   rnn_functional  Functional: GRU (return_sequences) -> SimpleRNN (go_backwards), LSTM (go_backwards,
//                   return_sequences) -> SimpleRNN (no bias), Concatenate, Dense
//   text_gru        Functional: int32 Input -> Embedding -> GRU (go_backwards, return_sequences) ->
//                   SimpleRNN -> Dense sigmoid (integer-valued X)
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const {fileSaveHandler, fileLoadHandler} = require('./tfjs_file_io');
const {writeNpy} = require('./npy');

// mulberry32: small deterministic PRNG (Math.random cannot be seeded)
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const uniform = (lo, hi) => lo + (hi - lo) * next();
  const normal = () => {
    const u = Math.max(next(), 1e-12), v = next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  return {next, uniform, normal};
}

function randomizeWeights(model, seed) {
  const r = rng(seed);
  const values = model.weights.map(w => {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const name = w.originalName;
    const a = new Float32Array(n);
    for (let i = 0; i < n; ++i) {
      if (/moving_variance$/.test(name)) a[i] = r.uniform(0.5, 2.0);
      else if (/moving_mean$/.test(name)) a[i] = 0.3 * r.normal();
      else if (/gamma$/.test(name)) a[i] = r.uniform(0.5, 1.5);
      else if (/(beta|bias)$/.test(name)) a[i] = 0.2 * r.normal();
      else {  // kernels: ~ He-scaled so activations stay O(1)
        const fanIn = w.shape.length === 4 ? w.shape[0] * w.shape[1] * (/depthwise/.test(name) ? 1 : w.shape[2])
                                           : w.shape[0];
        a[i] = r.normal() * Math.sqrt(2 / fanIn);
      }
    }
    return tf.tensor(a, w.shape);
  });
  model.setWeights(values);
}

function randomInput(shape, seed, vocabulary) {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  for (let i = 0; i < n; ++i) a[i] = vocabulary ? Math.floor(r.uniform(0, vocabulary)) : r.uniform(-1, 1);
  return a;
}

function buildMlp() {
  const m = tf.sequential({name: 'mlp'});
  m.add(tf.layers.dense({units: 8, activation: 'relu', inputShape: [4], name: 'dense_1'}));
  m.add(tf.layers.dense({units: 6, activation: 'tanh', name: 'dense_2'}));
  m.add(tf.layers.dense({units: 3, activation: 'softmax', name: 'dense_3'}));
  return {model: m, inputShape: [5, 4]};
}

function buildCnn() {
  const inp = tf.input({shape: [12, 12, 3], name: 'input_image'});
  let x = tf.layers.conv2d({filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: true,
                            name: 'conv_a'}).apply(inp);                      // 6x6x8
  x = tf.layers.batchNormalization({epsilon: 1e-3, momentum: 0.999, name: 'bn_a'}).apply(x);
  x = tf.layers.reLU({maxValue: 6, name: 'relu6_a'}).apply(x);
  x = tf.layers.zeroPadding2d({padding: [[0, 1], [0, 1]], name: 'pad_b'}).apply(x);  // 7x7x8
  x = tf.layers.depthwiseConv2d({kernelSize: 3, strides: 2, padding: 'valid', useBias: false,
                                 name: 'dw_b'}).apply(x);                     // 3x3x8
  x = tf.layers.batchNormalization({epsilon: 1e-3, name: 'bn_b'}).apply(x);
  const skip = tf.layers.reLU({maxValue: 6, name: 'relu6_b'}).apply(x);
  let y = tf.layers.conv2d({filters: 8, kernelSize: 1, useBias: false, name: 'conv_c'}).apply(skip);
  y = tf.layers.batchNormalization({epsilon: 1e-3, name: 'bn_c'}).apply(y);
  x = tf.layers.add({name: 'add_c'}).apply([skip, y]);
  x = tf.layers.depthwiseConv2d({kernelSize: 3, padding: 'same', depthMultiplier: 2, useBias: true,
                                 name: 'dw_d'}).apply(x);                     // 3x3x16
  x = tf.layers.globalAveragePooling2d({name: 'gap'}).apply(x);
  const out = tf.layers.dense({units: 4, activation: 'softmax', name: 'probs'}).apply(x);
  return {model: tf.model({inputs: inp, outputs: out, name: 'cnn'}), inputShape: [3, 12, 12, 3]};
}

function buildNested() {
  // A MobileNetV2-like Functional base with the real layer names, then a classifier head.
  const inp = tf.input({batchShape: [null, 16, 16, 3], name: 'input_1'});
  const bn = name => tf.layers.batchNormalization({epsilon: 1e-3, momentum: 0.999, name});
  const relu6 = name => tf.layers.reLU({maxValue: 6, name});
  let x = tf.layers.conv2d({filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false,
                            name: 'Conv1'}).apply(inp);                       // 8x8x8
  x = relu6('Conv1_relu').apply(bn('bn_Conv1').apply(x));
  // block 1: expand, pad, stride-2 valid depthwise, project (no add)
  x = tf.layers.conv2d({filters: 16, kernelSize: 1, padding: 'same', useBias: false, name: 'block_1_expand'}).apply(x);
  x = relu6('block_1_expand_relu').apply(bn('block_1_expand_BN').apply(x));
  x = tf.layers.zeroPadding2d({padding: [[0, 1], [0, 1]], name: 'block_1_pad'}).apply(x);  // 9x9
  x = tf.layers.depthwiseConv2d({kernelSize: 3, strides: 2, padding: 'valid', useBias: false,
                                 name: 'block_1_depthwise'}).apply(x);        // 4x4x16
  x = relu6('block_1_depthwise_relu').apply(bn('block_1_depthwise_BN').apply(x));
  x = tf.layers.conv2d({filters: 8, kernelSize: 1, padding: 'same', useBias: false, name: 'block_1_project'}).apply(x);
  const b1 = bn('block_1_project_BN').apply(x);                               // 4x4x8
  // block 2: stride 1 with residual Add
  x = tf.layers.conv2d({filters: 16, kernelSize: 1, padding: 'same', useBias: false, name: 'block_2_expand'}).apply(b1);
  x = relu6('block_2_expand_relu').apply(bn('block_2_expand_BN').apply(x));
  x = tf.layers.depthwiseConv2d({kernelSize: 3, strides: 1, padding: 'same', useBias: false,
                                 name: 'block_2_depthwise'}).apply(x);
  x = relu6('block_2_depthwise_relu').apply(bn('block_2_depthwise_BN').apply(x));
  x = tf.layers.conv2d({filters: 8, kernelSize: 1, padding: 'same', useBias: false, name: 'block_2_project'}).apply(x);
  x = bn('block_2_project_BN').apply(x);
  x = tf.layers.add({name: 'block_2_add'}).apply([b1, x]);
  x = tf.layers.conv2d({filters: 12, kernelSize: 1, useBias: false, name: 'Conv_1'}).apply(x);
  x = relu6('out_relu').apply(bn('Conv_1_bn').apply(x));
  const base = tf.model({inputs: inp, outputs: x, name: 'mobilenetv2_like'});

  const m = tf.sequential({name: 'flowers_classifier'});
  m.add(base);
  m.add(tf.layers.globalAveragePooling2d({name: 'global_average_pooling2d'}));
  m.add(tf.layers.dropout({rate: 0.2, name: 'dropout'}));
  m.add(tf.layers.dense({units: 5, activation: 'softmax', name: 'dense'}));
  return {model: m, inputShape: [2, 16, 16, 3]};
}

// ---- issue 17: the non-recurrent layers ---------------------------------------------------------
function buildLayers17Seq1d() {
  const m = tf.sequential({name: 'layers17_seq1d'});
  // TF.js 4.22 refuses padding 'causal' in conv1d ("not implemented yet"): test_layers17 checks it by hand
  m.add(tf.layers.conv1d({filters: 6, kernelSize: 3, padding: 'valid', dilationRate: 2, inputShape: [12, 3],
                          name: 'conv1d_dilated'}));                                      // 8 steps
  m.add(tf.layers.leakyReLU({alpha: 0.2, name: 'leaky'}));
  m.add(tf.layers.maxPooling1d({poolSize: 2, name: 'maxpool1d'}));                       // 4 steps
  m.add(tf.layers.conv1d({filters: 5, kernelSize: 3, strides: 2, padding: 'same', name: 'conv1d_same'}));  // 2
  m.add(tf.layers.elu({name: 'elu'}));
  m.add(tf.layers.averagePooling1d({poolSize: 2, strides: 1, padding: 'same', name: 'avgpool1d'}));
  m.add(tf.layers.layerNormalization({epsilon: 1e-3, name: 'layer_norm'}));
  m.add(tf.layers.prelu({name: 'prelu'}));
  m.add(tf.layers.conv1d({filters: 4, kernelSize: 2, padding: 'valid', activation: 'tanh', name: 'conv1d_valid'}));
  m.add(tf.layers.globalMaxPooling1d({name: 'gmp1d'}));
  return {model: m, inputShape: [3, 12, 3]};
}

function buildLayers17Seq2d() {
  const m = tf.sequential({name: 'layers17_seq2d'});
  // TF.js 4.22's SeparableConv2D does not save depth_multiplier (its own reload then fails): keep 1 here;
  // test_layers17 checks depth_multiplier 2
  m.add(tf.layers.separableConv2d({filters: 6, kernelSize: 3, padding: 'same', strides: 2,
                                   inputShape: [8, 7, 3], name: 'sep_a'}));                    // 4x4x6
  m.add(tf.layers.upSampling2d({size: [2, 3], name: 'up'}));                              // 8x12
  m.add(tf.layers.cropping2D({cropping: [[1, 2], [0, 3]], name: 'crop'}));               // 5x9
  m.add(tf.layers.conv2dTranspose({filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'deconv_same'}));
  m.add(tf.layers.conv2dTranspose({filters: 3, kernelSize: [2, 3], padding: 'valid', activation: 'relu',
                                   name: 'deconv_valid'}));                                 // 11x20x3
  m.add(tf.layers.prelu({sharedAxes: [1, 2], name: 'prelu_shared'}));
  m.add(tf.layers.conv2d({filters: 2, kernelSize: 3, dilationRate: 2, useBias: false, name: 'conv_dil'}));
  m.add(tf.layers.reshape({targetShape: [7 * 16, 2], name: 'to_steps'}));
  m.add(tf.layers.globalAveragePooling1d({name: 'gap1d'}));
  return {model: m, inputShape: [2, 8, 7, 3]};
}

function buildLayers17Fn() {
  const inp = tf.input({shape: [6, 5, 3], name: 'img'});
  const a = tf.layers.conv2d({filters: 4, kernelSize: 1, name: 'a'}).apply(inp);
  const b = tf.layers.conv2d({filters: 4, kernelSize: 3, padding: 'same', name: 'b'}).apply(inp);
  const c = tf.layers.separableConv2d({filters: 4, kernelSize: 3, padding: 'same', name: 'c'}).apply(inp);
  const mul = tf.layers.multiply({name: 'mul'}).apply([a, b]);
  const mx = tf.layers.maximum({name: 'max'}).apply([a, b, c]);
  const mn = tf.layers.minimum({name: 'min'}).apply([a, c]);
  const av = tf.layers.average({name: 'avg'}).apply([b, c, mul]);
  let x = tf.layers.concatenate({name: 'cat'}).apply([mul, mx, mn, av]);                  // 6x5x16
  // squeeze-and-excitation: Multiply broadcasts [N, 6, 5, 16] * [N, 1, 1, 16]
  const se = tf.layers.dense({units: 16, activation: 'sigmoid', name: 'se_dense'}).apply(
      tf.layers.globalAveragePooling2d({name: 'se_gap'}).apply(x));
  const excite = tf.layers.reshape({targetShape: [1, 1, 16], name: 'se_shape'}).apply(se);
  x = tf.layers.multiply({name: 'se_mul'}).apply([x, excite]);
  x = tf.layers.layerNormalization({name: 'ln', center: false}).apply(x);
  x = tf.layers.leakyReLU({name: 'leaky_default'}).apply(x);
  const out = tf.layers.conv2dTranspose({filters: 2, kernelSize: 2, strides: 2, name: 'up2'}).apply(x);  // 12x10x2
  return {model: tf.model({inputs: inp, outputs: out, name: 'layers17_fn'}), inputShape: [3, 6, 5, 3]};
}

/// Keras's UpSampling2D(bilinear) and Resizing use tf.image.resize (half-pixel centers); TF.js's
/// layers of those names sample otherwise, so the reference is TF.js's resize ops with
/// halfPixelCenters true: Y_<case>.npy for X.npy [2, 5, 7, 3].
async function writeResize17(outDir) {
  const dir = path.join(outDir, 'resize17');
  fs.mkdirSync(dir, {recursive: true});
  const shape = [2, 5, 7, 3];
  const x = tf.tensor(randomInput(shape, 4242), shape);
  writeNpy(path.join(dir, 'X.npy'), Float32Array.from(await x.data()), shape);
  const cases = {
    up_bilinear_2x3: tf.image.resizeBilinear(x, [10, 21], false, true),
    resize_bilinear_4x9: tf.image.resizeBilinear(x, [4, 9], false, true),
    resize_nearest_8x3: tf.image.resizeNearestNeighbor(x, [8, 3], false, true),
    // crop_to_aspect_ratio to 3x3: the centred 5x5 window (cols 1..5), then resized
    resize_crop_bilinear_3x3: tf.image.resizeBilinear(x.slice([0, 0, 1, 0], [2, 5, 5, 3]), [3, 3], false, true),
  };
  for (const [name, y] of Object.entries(cases))
    writeNpy(path.join(dir, `Y_${name}.npy`), Float32Array.from(await y.data()), y.shape);
  console.log(`resize17: ${Object.keys(cases).length} resize references -> ${dir}`);
}

// ---- text and sequence layers (recurrentActivation 'sigmoid', Keras's default: TF.js's own
// default 'hardSigmoid' is tf.keras 2's clip(0.2 x + 0.5), not Keras 3's hard_sigmoid)
function buildTextLstm() {
  const m = tf.sequential({name: 'text_lstm'});
  m.add(tf.layers.embedding({inputDim: 20, outputDim: 6, inputLength: 7, name: 'embedding'}));
  m.add(tf.layers.lstm({units: 5, recurrentActivation: 'sigmoid', unitForgetBias: true, name: 'lstm'}));
  m.add(tf.layers.dense({units: 3, activation: 'softmax', name: 'probs'}));
  return {model: m, inputShape: [4, 7], vocabulary: 20};
}

function buildRnnFunctional() {
  const inp = tf.input({shape: [6, 4], name: 'sequence'});
  let a = tf.layers.gru({units: 5, recurrentActivation: 'sigmoid', returnSequences: true, name: 'gru'}).apply(inp);
  a = tf.layers.simpleRNN({units: 4, goBackwards: true, name: 'simple_rnn'}).apply(a);
  let b = tf.layers.lstm({units: 3, recurrentActivation: 'sigmoid', goBackwards: true, returnSequences: true,
                          name: 'lstm_back'}).apply(inp);
  b = tf.layers.simpleRNN({units: 3, activation: 'relu', useBias: false, name: 'simple_rnn_1'}).apply(b);
  const x = tf.layers.concatenate({name: 'concat'}).apply([a, b]);
  const out = tf.layers.dense({units: 2, name: 'out'}).apply(x);
  return {model: tf.model({inputs: inp, outputs: out, name: 'rnn_functional'}), inputShape: [3, 6, 4]};
}

function buildTextGru() {
  const inp = tf.input({shape: [5], dtype: 'int32', name: 'tokens'});
  let x = tf.layers.embedding({inputDim: 11, outputDim: 4, name: 'emb'}).apply(inp);
  x = tf.layers.gru({units: 4, recurrentActivation: 'sigmoid', goBackwards: true, returnSequences: true,
                     name: 'gru_back'}).apply(x);
  x = tf.layers.simpleRNN({units: 3, name: 'rnn'}).apply(x);
  const out = tf.layers.dense({units: 1, activation: 'sigmoid', name: 'p'}).apply(x);
  return {model: tf.model({inputs: inp, outputs: out, name: 'text_gru'}), inputShape: [4, 5], vocabulary: 11};
}

async function main() {
  const outDir = process.argv[2];
  if (!outDir) { console.error('usage: node make_models.js OUT_DIR'); process.exit(2); }
  await tf.setBackend('cpu');
  const builders = {mlp: buildMlp, cnn: buildCnn, nested: buildNested, layers17_seq1d: buildLayers17Seq1d,
                    layers17_seq2d: buildLayers17Seq2d, layers17_fn: buildLayers17Fn,
                    text_lstm: buildTextLstm, rnn_functional: buildRnnFunctional, text_gru: buildTextGru};
  let seed = 1;
  for (const [name, build] of Object.entries(builders)) {
    const {model, inputShape, vocabulary} = build();
    randomizeWeights(model, 1000 + seed);
    const x = tf.tensor(randomInput(inputShape, 2000 + seed, vocabulary), inputShape);
    seed += 1;
    const y = model.predict(x);
    const dir = path.join(outDir, name);
    await model.save(fileSaveHandler(dir));
    writeNpy(path.join(dir, 'X.npy'), Float32Array.from(await x.data()), inputShape);
    writeNpy(path.join(dir, 'Y.npy'), Float32Array.from(await y.data()), y.shape);
    // round trip through our own loader: same prediction bit for bit
    const back = await tf.loadLayersModel(fileLoadHandler(dir));
    const y2 = back.predict(x);
    const diff = (await tf.max(tf.abs(tf.sub(y, y2))).data())[0];
    if (diff !== 0) throw new Error(`${name}: reloaded model predicts differently (max diff ${diff})`);
    console.log(`${name}: ${model.countParams()} params, ${model.weights.length} weights, ` +
                `X [${inputShape}] -> Y [${y.shape}] -> ${dir}`);
  }
  await writeResize17(outDir);
}

main().catch(e => { console.error(`make_models.js: error: ${e.stack || e}`); process.exit(1); });
