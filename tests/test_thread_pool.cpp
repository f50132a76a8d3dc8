// kerascpp's thread pool (core/thread_pool.hpp): every chunk runs exactly once, errors reach the
// caller, nested loops run serially, results do not depend on the thread count or on the timing.
#include <catch2/catch.hpp>
#include <keras/core/random.hpp>
#include <keras/core/threading.hpp>
#include <keras/ops/conv2d.hpp>
#include <keras/ops/depthwise_conv2d.hpp>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

using keras::Index;

namespace {
struct SavedThreads {
  int n = keras::get_num_threads();
  ~SavedThreads() { keras::set_num_threads(n); }
};
}  // namespace

TEST_CASE("parallel_chunks runs every chunk exactly once, slots below the thread count", "[pool]") {
  SavedThreads saved;
  for (int threads : {1, 2, 3, 5}) {
    for (Index n : {Index(1), Index(2), Index(7), Index(64), Index(1000)}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      std::atomic<int> bad_slot{0};
      keras::parallel_chunks(n, threads, [&](Index k, int slot) {
        hits[static_cast<std::size_t>(k)].fetch_add(1);
        if (slot < 0 || slot >= threads) bad_slot.fetch_add(1);
        CHECK(keras::in_parallel_region());
      });
      int wrong = 0;
      for (auto& h : hits) wrong += h.load() != 1;
      INFO("threads " << threads << ", chunks " << n);
      CHECK(wrong == 0);
      CHECK(bad_slot.load() == 0);
      CHECK(!keras::in_parallel_region());
    }
  }
}

TEST_CASE("parallel_for covers [0, n) once with contiguous ranges", "[pool]") {
  SavedThreads saved;
  for (int threads : {1, 2, 3}) {
    keras::set_num_threads(threads);
    for (Index n : {Index(0), Index(1), Index(5), Index(100), Index(12345)}) {
      for (Index grain : {Index(1), Index(16), Index(100000)}) {
        std::vector<int> hits(static_cast<std::size_t>(n), 0);
        keras::parallel_for(n, grain, [&](Index b, Index e) {
          CHECK(b < e);
          for (Index i = b; i < e; ++i) hits[static_cast<std::size_t>(i)]++;  // ranges are disjoint
        });
        int wrong = 0;
        for (int h : hits) wrong += h != 1;
        CHECK(wrong == 0);
      }
    }
  }
}

TEST_CASE("an exception in a chunk reaches the caller, and the pool keeps working", "[pool]") {
  SavedThreads saved;
  keras::set_num_threads(2);
  std::atomic<int> ran{0};
  CHECK_THROWS_WITH(keras::parallel_chunks(200, 2,
                                           [&](Index k, int) {
                                             ran.fetch_add(1);
                                             if (k == 3) throw std::runtime_error("chunk 3 failed");
                                           }),
                    "chunk 3 failed");
  CHECK(ran.load() >= 1);
  CHECK(!keras::in_parallel_region());
  std::atomic<Index> sum{0};
  keras::parallel_chunks(100, 2, [&](Index k, int) { sum.fetch_add(k); });
  CHECK(sum.load() == 99 * 100 / 2);
}

TEST_CASE("calls nested inside a chunk run serially on the calling thread", "[pool]") {
  SavedThreads saved;
  keras::set_num_threads(3);
  std::atomic<int> inner_threads_seen{0}, outer{0}, inner{0};
  keras::parallel_chunks(6, 3, [&](Index, int) {
    outer.fetch_add(1);
    if (keras::get_num_threads() != 1) inner_threads_seen.fetch_add(1);
    const auto me = std::this_thread::get_id();
    keras::parallel_chunks(5, 3, [&](Index, int slot) {
      inner.fetch_add(1);
      CHECK(slot == 0);
      CHECK(std::this_thread::get_id() == me);
    });
  });
  CHECK(outer.load() == 6);
  CHECK(inner.load() == 30);
  CHECK(inner_threads_seen.load() == 0);
  CHECK(keras::get_num_threads() == 3);
}

TEST_CASE("the pool serves several user threads at once (a busy pool runs the other caller serially)", "[pool]") {
  SavedThreads saved;
  keras::set_num_threads(2);
  std::atomic<int> wrong{0};
  auto user = [&] {
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<int> hits(97, 0);
      keras::parallel_chunks(97, 2, [&](Index k, int) { hits[static_cast<std::size_t>(k)]++; });
      for (int h : hits) wrong += h != 1;
    }
  };
  std::thread a(user), b(user);
  a.join();
  b.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("weight gradients are bit-identical on 1, 2 and 3 threads, also under load", "[pool]") {
  SavedThreads saved;
  keras::Random rng(5);
  auto fill = [&](keras::Tensor<float>& t) {
    for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<float>(rng.uniform(-1, 1));
  };
  keras::Tensor<float> x({6, 9, 11, 24}), k({3, 3, 24, 16}), dk1({1, 1, 24, 16}), kd({3, 3, 24, 1});
  fill(x);
  fill(k);
  fill(dk1);
  fill(kd);
  auto g3 = keras::ops::conv_geometry(9, 11, 24, 3, 3, 1, 1, "same");
  auto g1 = keras::ops::conv_geometry(9, 11, 24, 1, 1, 1, 1, "same");
  auto gd = keras::ops::conv_geometry(9, 11, 24, 3, 3, 2, 2, "same");
  keras::Tensor<float> dy3({6, g3.out_h, g3.out_w, 16}), dy1({6, g1.out_h, g1.out_w, 16}),
      dyd({6, gd.out_h, gd.out_w, 24});
  fill(dy3);
  fill(dy1);
  fill(dyd);
  struct Grads {
    keras::Tensor<float> dk3, db3, dk1, db1, dkd, dbd;
  };
  auto run = [&] {
    Grads r{keras::Tensor<float>(k.shape(), 0.f),   keras::Tensor<float>({16}, 0.f),
            keras::Tensor<float>(dk1.shape(), 0.f), keras::Tensor<float>({16}, 0.f),
            keras::Tensor<float>(kd.shape(), 0.f),  keras::Tensor<float>({24}, 0.f)};
    keras::ops::Conv2DWorkspace<float> ws;
    ws.block_bytes = 4096;  // many blocks
    keras::Tensor<float> dx;
    keras::ops::conv2d_backward(g3, x, k, dy3, &dx, &r.dk3, &r.db3, ws);
    keras::ops::conv2d_backward(g1, x, dk1, dy1, &dx, &r.dk1, &r.db1, ws);
    keras::ops::DepthwiseConv2DWorkspace<float> wd;
    keras::ops::depthwise_conv2d_backward(gd, x, kd, dyd, &dx, &r.dkd, &r.dbd, wd);
    return r;
  };
  auto same = [](const keras::Tensor<float>& a, const keras::Tensor<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
  };
  keras::set_num_threads(1);
  const Grads ref = run();
  // a busy thread next to the pool shifts which thread runs which chunk
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    volatile unsigned long v = 0;
    while (!stop.load(std::memory_order_relaxed)) v = v + 1;
  });
  for (int threads : {2, 3, 2}) {
    keras::set_num_threads(threads);
    for (int rep = 0; rep < 3; ++rep) {
      const Grads g = run();
      INFO(threads << " threads, repetition " << rep);
      CHECK(same(g.dk3, ref.dk3));
      CHECK(same(g.db3, ref.db3));
      CHECK(same(g.dk1, ref.dk1));
      CHECK(same(g.db1, ref.db1));
      CHECK(same(g.dkd, ref.dkd));
      CHECK(same(g.dbd, ref.dbd));
    }
  }
  stop = true;
  busy.join();
}
