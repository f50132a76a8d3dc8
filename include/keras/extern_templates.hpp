// Compile kerascpp's class templates once per program instead of once per translation unit.
//
// kerascpp is header-only: every .cpp that uses Conv2D<float> compiles Conv2D<float> (every
// virtual, hence every kernel it calls) at the project's optimisation level, and that code
// generation, not parsing, is most of a build. A project with many translation units can
// instead include this header in each of them (after or instead of keras.hpp): it declares
// `extern template class ...` for the built-in layers, models, engine, trainers, optimizers,
// losses, metrics and callbacks, and the GEMM / convolution kernels, in float and double.
// Exactly one .cpp of the program then defines the instances:
//
//   #include <keras/extern_templates.hpp>
//   KERASCPP_INSTANTIATE_ALL(float)
//   KERASCPP_INSTANTIATE_ALL(double)   // only if the program uses double
//
// (or, to build them in parallel, one KERASCPP_INSTANTIATE_<GROUP>(T) per .cpp, GROUP one of
// LAYERS, MORE_LAYERS, ENGINE, TRAINING, IO, OPS). Behaviour is identical; only where the code
// is compiled changes. kerascpp's own tests, tools and examples are built this way
// (cmake/instances.cmake, docs/performance.md). A class left out of the lists below still works:
// it is compiled in each file that uses it, as before.
#pragma once
#include "all.hpp"

/// Seen by headers outside all.hpp (testing/layer_check.hpp) that declare their own instances extern.
#define KERASCPP_EXTERN_TEMPLATES 1

// (clang-format leaves the tables below as written)
// clang-format off

// The class templates of one scalar type T, in groups of similar compile cost.
#define KERASCPP_LAYER_TEMPLATES(X, T)                                                                                 \
  X(layers::Layer<T>) X(layers::Dense<T>) X(layers::Conv2D<T>) X(layers::DepthwiseConv2D<T>)                          \
  X(layers::BatchNormalization<T>) X(layers::Activation<T>) X(layers::ReLU<T>) X(layers::Softmax<T>)                \
  X(layers::Dropout<T>) X(layers::Flatten<T>) X(layers::Reshape<T>) X(layers::ZeroPadding2D<T>)                      \
  X(layers::Rescaling<T>) X(layers::Add<T>) X(layers::Concatenate<T>) X(layers::MaxPooling2D<T>)                    \
  X(layers::AveragePooling2D<T>) X(layers::GlobalAveragePooling2D<T>) X(layers::GlobalMaxPooling2D<T>)              \
  X(layers::InputLayer<T>) X(layers::RandomFlip<T>) X(layers::RandomRotation<T>) X(layers::RandomZoom<T>)           \
  X(layers::RandomTranslation<T>) X(layers::Registry<T>) X(layers::detail::Pooling2D<T, true>) X(layers::detail::Pooling2D<T, false>)         \
  X(layers::detail::GlobalPooling2D<T, true>) X(layers::detail::GlobalPooling2D<T, false>) X(layers::RandomImageLayer<T>)            \
  X(layers::RandomAffineLayer<T>)
#define KERASCPP_MORE_LAYER_TEMPLATES(X, T)                                                                            \
  X(layers::LeakyReLU<T>) X(layers::ELU<T>) X(layers::PReLU<T>) X(layers::Conv1D<T>) X(layers::MaxPooling1D<T>)       \
  X(layers::AveragePooling1D<T>) X(layers::GlobalAveragePooling1D<T>) X(layers::GlobalMaxPooling1D<T>)                \
  X(layers::detail::Pooling1D<T, true>) X(layers::detail::Pooling1D<T, false>)                                        \
  X(layers::detail::GlobalPooling2D<T, true, 3>) X(layers::detail::GlobalPooling2D<T, false, 3>)                      \
  X(layers::Conv2DTranspose<T>) X(layers::SeparableConv2D<T>) X(layers::LayerNormalization<T>)                        \
  X(layers::Normalization<T>) X(layers::UpSampling2D<T>) X(layers::Cropping2D<T>) X(layers::Resizing<T>)              \
  X(layers::Multiply<T>) X(layers::Subtract<T>) X(layers::Average<T>) X(layers::Maximum<T>) X(layers::Minimum<T>)  \
  X(layers::Embedding<T>) X(layers::RecurrentBase<T>) X(layers::SimpleRNN<T>) X(layers::LSTM<T>) X(layers::GRU<T>)  \
  X(layers::detail::ElementwiseMerge<T, ::keras::layers::detail::MergeOp::Multiply>)                                      \
  X(layers::detail::ElementwiseMerge<T, ::keras::layers::detail::MergeOp::Subtract>)                                      \
  X(layers::detail::ElementwiseMerge<T, ::keras::layers::detail::MergeOp::Average>)                                       \
  X(layers::detail::ElementwiseMerge<T, ::keras::layers::detail::MergeOp::Maximum>)                                       \
  X(layers::detail::ElementwiseMerge<T, ::keras::layers::detail::MergeOp::Minimum>)
#define KERASCPP_ENGINE_TEMPLATES(X, T)                                                                                \
  X(Model<T>) X(Sequential<T>) X(engine::Graph<T>) X(engine::Topology<T>) X(engine::Backprop<T>)                      \
  X(engine::Fusion<T>) X(engine::SlicedRunner<T>)
#define KERASCPP_TRAINING_TEMPLATES(X, T)                                                                              \
  X(trainers::Trainer<T>) X(trainers::TensorBatchSource<T>) X(trainers::DatasetBatchSource<T>)                        \
  X(trainers::FeatureCache<T>) X(callbacks::CallbackList<T>) X(callbacks::ProgbarLogger<T>)                           \
  X(callbacks::EarlyStopping<T>) X(callbacks::CSVLogger<T>) X(callbacks::TerminateOnNaN<T>)                           \
  X(callbacks::LearningRateScheduler<T>) X(callbacks::ReduceLROnPlateau<T>) X(callbacks::LambdaCallback<T>)           \
  X(callbacks::ModelCheckpoint<T>) X(optimizers::SGD<T>) X(optimizers::Adam<T>) X(optimizers::AdamW<T>)               \
  X(optimizers::RMSprop<T>) X(losses::CategoricalCrossentropy<T>) X(losses::SparseCategoricalCrossentropy<T>)         \
  X(losses::MeanSquaredError<T>) X(losses::BinaryCrossentropy<T>) X(metrics::Mean<T>) X(metrics::Accuracy<T>)         \
  X(metrics::CategoricalAccuracy<T>) X(metrics::SparseCategoricalAccuracy<T>) X(metrics::BinaryAccuracy<T>)           \
  X(metrics::LossMetric<T>) X(metrics::Precision<T>) X(metrics::Recall<T>) X(metrics::AUC<T>)                         \
  X(metrics::TopKCategoricalAccuracy<T>) X(metrics::Metric<T>) X(metrics::MeanMetricWrapper<T>)                \
  X(metrics::ThresholdConfusion<T>) X(losses::Loss<T>) X(optimizers::Optimizer<T>) X(callbacks::Callback<T>)         \
  X(data::Dataset<T>)

// The function templates of model files, .npy, MobileNetV2 and image datasets, and the layer registry
// (layers::registry<T>() creates every built-in layer from its config: each program that loads a
// model or round-trips a config compiled all of them).
#define KERASCPP_IO_TEMPLATES(X, T)                                                                                    \
  X(::keras::layers::Registry<T>& layers::registry<T>())                                                             \
  X(std::shared_ptr<::keras::Model<T>> io::model_from_config<T>(const ::keras::json&))                                \
  X(std::shared_ptr<::keras::Model<T>> io::load_model<T>(const std::string&))                                          \
  X(void io::load_weights<T>(::keras::Model<T>&, const std::string&, bool))                                            \
  X(void io::save_model<T>(::keras::Model<T>&, const std::string&))                                                    \
  X(void io::save_weights<T>(::keras::Model<T>&, const std::string&))                                                  \
  X(::keras::Tensor<T> io::load_npy<T>(const std::string&))                                                            \
  X(void io::save_npy<T>(const std::string&, const ::keras::Tensor<T>&))                                               \
  X(std::shared_ptr<::keras::Model<T>> applications::MobileNetV2<T>(::keras::applications::MobileNetV2Options))        \
  X(std::pair<::keras::data::Dataset<T>, ::keras::data::Dataset<T>> data::detail::image_datasets<T>(                   \
      const std::string&, const ::keras::data::ImageDatasetOptions&, bool))                                            \
  X(::keras::data::Dataset<T> data::detail::paths_to_dataset<T>(std::vector<std::string>, std::vector<int>,            \
                                                                 const std::vector<std::string>&,                     \
                                                                 const ::keras::data::ImageDatasetOptions&, bool,      \
                                                                 std::uint64_t))

// The kernels: the GEMM and convolution function templates that the layers (and tests) call. Each
// pulls in the GEMM micro-kernel (all its tile variants) and Eigen's GEMM; declared here, they are
// compiled once instead of in every piece and program that has a Dense or a convolution (the
// micro-kernel was ~30% of the layers' float instances).
#define KERASCPP_OPS_TEMPLATES(X, T)                                                                                   \
  X(void ops::gemm<T>(bool, bool, Index, Index, Index, T, const T*, Index, const T*, Index, T, T*, Index))           \
  X(void ops::gemm_serial<T>(bool, bool, Index, Index, Index, T, const T*, Index, const T*, Index, T, T*, Index))    \
  X(void ops::conv2d_forward<T>(const ops::Conv2DGeometry&, Index, const T*, const T*, const T*, T*,                 \
                                ops::Conv2DWorkspace<T>&, const ops::Epilogue<T>*, const ops::PackedB*))              \
  X(void ops::conv2d_backward<T>(const ops::Conv2DGeometry&, Index, const T*, const T*, const T*, T*, T*, T*,        \
                                 ops::Conv2DWorkspace<T>&))                                                           \
  X(void ops::conv2d_backward_pointwise_fused<T>(const ops::Conv2DGeometry&, Index, const T*, const T*, const T*,    \
                                                 const T*, const ops::Epilogue<T>&, T*, T*, T*,                       \
                                                 ops::Conv2DWorkspace<T>&))                                           \
  X(void ops::depthwise_conv2d_forward<T>(const ops::Conv2DGeometry&, Index, const T*, const T*, const T*, T*,       \
                                          const ops::Epilogue<T>*))                                                   \
  X(void ops::depthwise_conv2d_backward<T>(const ops::Conv2DGeometry&, Index, const T*, const T*, const T*, T*, T*,  \
                                           T*, ops::DepthwiseConv2DWorkspace<T>&))

#define KERASCPP_DETAIL_EXTERN(...) extern template class ::keras::__VA_ARGS__;
#define KERASCPP_DETAIL_INSTANTIATE(...) template class ::keras::__VA_ARGS__;
#define KERASCPP_DETAIL_EXTERN_FN(...) extern template __VA_ARGS__;
#define KERASCPP_DETAIL_INSTANTIATE_FN(...) template __VA_ARGS__;

#define KERASCPP_INSTANTIATE_LAYERS(T) KERASCPP_LAYER_TEMPLATES(KERASCPP_DETAIL_INSTANTIATE, T)
#define KERASCPP_INSTANTIATE_MORE_LAYERS(T) KERASCPP_MORE_LAYER_TEMPLATES(KERASCPP_DETAIL_INSTANTIATE, T)
#define KERASCPP_INSTANTIATE_ENGINE(T) KERASCPP_ENGINE_TEMPLATES(KERASCPP_DETAIL_INSTANTIATE, T)
#define KERASCPP_INSTANTIATE_TRAINING(T) KERASCPP_TRAINING_TEMPLATES(KERASCPP_DETAIL_INSTANTIATE, T)
#define KERASCPP_INSTANTIATE_IO(T) \
  namespace keras {                \
  KERASCPP_IO_TEMPLATES(KERASCPP_DETAIL_INSTANTIATE_FN, T) \
  }
#define KERASCPP_INSTANTIATE_OPS(T) \
  namespace keras {                 \
  KERASCPP_OPS_TEMPLATES(KERASCPP_DETAIL_INSTANTIATE_FN, T) \
  }
#define KERASCPP_INSTANTIATE_ALL(T)                                                             \
  KERASCPP_INSTANTIATE_LAYERS(T) KERASCPP_INSTANTIATE_MORE_LAYERS(T) KERASCPP_INSTANTIATE_ENGINE(T) \
  KERASCPP_INSTANTIATE_TRAINING(T) KERASCPP_INSTANTIATE_IO(T) KERASCPP_INSTANTIATE_OPS(T)

KERASCPP_LAYER_TEMPLATES(KERASCPP_DETAIL_EXTERN, float)
KERASCPP_LAYER_TEMPLATES(KERASCPP_DETAIL_EXTERN, double)
KERASCPP_MORE_LAYER_TEMPLATES(KERASCPP_DETAIL_EXTERN, float)
KERASCPP_MORE_LAYER_TEMPLATES(KERASCPP_DETAIL_EXTERN, double)
KERASCPP_ENGINE_TEMPLATES(KERASCPP_DETAIL_EXTERN, float)
KERASCPP_ENGINE_TEMPLATES(KERASCPP_DETAIL_EXTERN, double)
KERASCPP_TRAINING_TEMPLATES(KERASCPP_DETAIL_EXTERN, float)
KERASCPP_TRAINING_TEMPLATES(KERASCPP_DETAIL_EXTERN, double)
namespace keras {
KERASCPP_IO_TEMPLATES(KERASCPP_DETAIL_EXTERN_FN, float)
KERASCPP_IO_TEMPLATES(KERASCPP_DETAIL_EXTERN_FN, double)
KERASCPP_OPS_TEMPLATES(KERASCPP_DETAIL_EXTERN_FN, float)
KERASCPP_OPS_TEMPLATES(KERASCPP_DETAIL_EXTERN_FN, double)
}  // namespace keras
// clang-format on
