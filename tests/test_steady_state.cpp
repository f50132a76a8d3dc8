// Buffers are reused across batches: once a model has seen a batch shape, further inference calls
// and training steps of that shape allocate (almost) nothing. This binary interposes malloc and
// its siblings (glibc) to count the bytes allocated inside the measured region.
#include "layer_check.hpp"

#include <keras/layers/batch_normalization.hpp>
#include <keras/layers/conv2d.hpp>
#include <keras/layers/depthwise_conv2d.hpp>
#include <keras/layers/merge.hpp>
#include <keras/layers/pooling.hpp>
#include <keras/layers/reshaping.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#ifdef __GLIBC__

// Every heap allocation (operator new, Eigen's aligned_malloc, std::vector...) ends in malloc or
// one of its siblings; on glibc the executable's definitions take precedence over libc's, and
// __libc_* are glibc's own implementations.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_bytes{0};
std::atomic<std::size_t> g_calls{0};
std::atomic<std::size_t> g_largest{0};

inline void note(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_bytes.fetch_add(n, std::memory_order_relaxed);
    g_calls.fetch_add(1, std::memory_order_relaxed);
    std::size_t m = g_largest.load(std::memory_order_relaxed);
    while (n > m && !g_largest.compare_exchange_weak(m, n)) {}
  }
}

struct Counted {
  std::size_t bytes, calls, largest;
};
template <class F>
Counted count_allocations(F&& f) {
  g_bytes = 0;
  g_calls = 0;
  g_largest = 0;
  g_counting = true;
  f();
  g_counting = false;
  return {g_bytes.load(), g_calls.load(), g_largest.load()};
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  note(n);
  return __libc_malloc(n);
}
void* calloc(std::size_t k, std::size_t n) {
  note(k * n);
  return __libc_calloc(k, n);
}
void* realloc(void* p, std::size_t n) {
  note(n);
  return __libc_realloc(p, n);
}
void* memalign(std::size_t a, std::size_t n) {
  note(n);
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  note(n);
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  note(n);
  void* p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}
#define KERAS_COUNTS_ALLOCATIONS 1
#endif

using namespace keras;

namespace {
/// MobileNetV2-shaped: strided conv/BN/ReLU6, an inverted residual block, padded strided
/// depthwise, GlobalAveragePooling2D and a softmax head.
std::shared_ptr<Model<float>> mobilenet_like() {
  using namespace layers;
  const BatchNormalizationOptions bn{.momentum = 0.9, .epsilon = 1e-3};
  auto in = Input<float>({32, 32, 3});
  auto x = Conv2D<float>(16, 3, {.strides = {2, 2}, .padding = "same", .use_bias = false})(in);
  x = BatchNormalization<float>(bn)(x);
  x = ReLU<float>({.max_value = 6.0})(x);
  auto y = Conv2D<float>(48, 1, {.use_bias = false})(x);
  y = BatchNormalization<float>(bn)(y);
  y = ReLU<float>({.max_value = 6.0})(y);
  y = DepthwiseConv2D<float>(3, {.padding = "same", .use_bias = false})(y);
  y = BatchNormalization<float>(bn)(y);
  y = ReLU<float>({.max_value = 6.0})(y);
  y = Conv2D<float>(16, 1, {.use_bias = false})(y);
  y = BatchNormalization<float>(bn)(y);
  x = Add<float>()({x, y});
  x = ZeroPadding2D<float>(Padding2D({0, 1}, {0, 1}))(x);
  x = DepthwiseConv2D<float>(3, {.strides = {2, 2}, .use_bias = false})(x);
  x = BatchNormalization<float>(bn)(x);
  x = ReLU<float>({.max_value = 6.0})(x);
  x = GlobalAveragePooling2D<float>()(x);
  x = Dense<float>(5, {.activation = "softmax"})(x);
  return std::make_shared<Model<float>>(in, x);
}
}  // namespace

TEST_CASE("Steady state: inference and training steps reuse their buffers", "[steady]") {
#ifndef KERAS_COUNTS_ALLOCATIONS
  WARN("allocation counting needs glibc's malloc interposition; not checked on this platform");
  return;
#endif
  set_random_seed(3);
  auto model = mobilenet_like();
  model->compile("adam", "categorical_crossentropy");
  const Index batch = 8;
  Random rng(4);
  Tensor<float> x({batch, 32, 32, 3}), y({batch, 5});
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  y.setZero();
  for (Index i = 0; i < batch; ++i) y.at({i, i % 5}) = 1;
  // One activation of the first block alone: 8 x 16 x 16 x 48 floats = 393 KB.
  const std::size_t one_activation = static_cast<std::size_t>(batch) * 16 * 16 * 48 * sizeof(float);

  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int warm = 0; warm < 2; ++warm) {
      (*model)(x);
      model->train_on_batch(x, y);
    }
    auto inf = count_allocations([&] { (*model)(x); });
    auto step = count_allocations([&] { model->train_on_batch(x, y); });
    INFO("threads " << threads << ": inference " << inf.bytes << " bytes in " << inf.calls << " allocations (largest "
                    << inf.largest << "); training step " << step.bytes << " bytes in " << step.calls << " (largest "
                    << step.largest << ")");
    // Small bookkeeping (pointer vectors, libgomp's ~1.5 KB team per parallel region) is fine;
    // no activation, gradient or workspace buffer (the smallest here are several KB).
    CHECK(inf.largest < 4096);
    CHECK(step.largest < 4096);
    CHECK(inf.bytes < one_activation / 4);
    CHECK(step.bytes < one_activation / 4);
  }

  // The counter itself works: a larger batch makes the training step grow its buffers.
  Tensor<float> x2({batch + 4, 32, 32, 3}), y2({batch + 4, 5});
  x2.setZero();
  y2.setZero();
  for (Index i = 0; i < batch + 4; ++i) y2.at({i, 0}) = 1;
  auto grow = count_allocations([&] { model->train_on_batch(x2, y2); });
  INFO("larger batch: " << grow.bytes << " bytes");
  CHECK(grow.bytes > one_activation);
}
