// kerascpp's own thread pool: every parallel loop of the library runs here (not in OpenMP).
//
// Why not OpenMP: libgomp's team barrier spin-waits (OMP_WAIT_POLICY / GOMP_SPINCOUNT, read once at
// program start, so a library cannot change them). When two programs share the cores, a master
// spinning at a barrier for a worker that the other program's threads keep off the CPU wastes its
// whole time slice: a batch-1 predict went from 7 ms to 580 ms with two programs on 2 cores.
//
// How this pool avoids that:
//  - Work is a number of chunks, cut into one contiguous range per thread (slot 0 = the caller,
//    1.. = workers). Each thread claims the chunks of its own range from the front, one at a time;
//    when its range is empty it steals the chunks of the others' ranges from the back. So the caller
//    never waits for a worker that has not started: if the other threads are off the CPU, the caller
//    runs every chunk itself. It only waits for chunks a worker has already claimed and not
//    finished yet. Own ranges first keeps a thread on the same part of the data from one loop to the
//    next (the same rows of an image through a chain of layers), which stays in its core's cache:
//    with chunks claimed from one shared counter, a depthwise convolution after a pointwise one ran
//    slower on 2 threads than on 1 (its input was in the other core's cache).
//  - Idle workers spin for a bounded time (kSpinMicros, a few tens of microseconds, enough to bridge
//    the gap between two layers) and then block on a condition variable. The caller waiting for a
//    claimed chunk also spins briefly, then blocks.
//  - While a pass of a model runs (a PassScope lives: engine/graph.hpp), idle workers keep spinning
//    between its parallel loops for up to kPassSpinMicros after the last job, yielding the core every
//    kSpinMicros so that another program's threads on it still run. Waking a blocked worker costs the
//    caller a futex call on its critical path (measured: 19% of a batch-1 MobileNetV2 pass on
//    2 threads, whose ~60 parallel loops are separated by serial stretches longer than kSpinMicros).
//  - Which thread runs a chunk depends on timing, what a chunk computes must not: chunk boundaries
//    are chosen by the caller from the sizes (and at most the thread count), never from the timing,
//    and per-chunk partial results are combined in chunk order. The `slot` passed with a chunk
//    (0 = caller, 1.. = workers, < threads) is for scratch buffers only.
//  - Calls made from inside a chunk (or from another thread while the pool is busy) run serially on
//    the calling thread: kernels never nest threads, and get_num_threads() is 1 there.
//  - No allocation per call: the job is a function pointer and a context pointer; workers are created
//    the first time a thread count needs them.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include "shape.hpp"

namespace keras {

namespace detail {

inline bool& in_pool_region_flag() {
  static thread_local bool inside = false;
  return inside;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class ThreadPool {
 public:
  /// Idle workers spin this long for the next job before they block (bridges the gaps between
  /// layers; short enough that a program sharing the cores loses little).
  static constexpr int kSpinMicros = 50;
  /// The caller spins this long for chunks other threads have claimed before it blocks.
  static constexpr int kWaitSpinMicros = 20;
  /// Inside a pass (PassScope), idle workers spin this long after the last job before they block.
  static constexpr int kPassSpinMicros = 2000;
  static constexpr Index kMaxChunks = (Index(1) << 20) - 1;

  static ThreadPool& instance() { return *instance_ptr(); }

  /// Runs body(chunk, slot) for every chunk in [0, nchunks), each exactly once, on up to `threads`
  /// threads (the caller is slot 0). Returns when all chunks are done; rethrows the first exception
  /// a chunk threw (the chunks not started yet are then skipped). nchunks <= kMaxChunks.
  template <class F>
  void run(Index nchunks, int threads, F& body) {
    run_erased(
        nchunks, threads, [](void* ctx, Index chunk, int slot) { (*static_cast<F*>(ctx))(chunk, slot); },
        static_cast<void*>(&body));
  }

  /// run() with the body as a function pointer and its context: the pool's logic is compiled once
  /// per program, not once per loop body (a program has hundreds of parallel loops).
  void run_erased(Index nchunks, int threads, void (*invoke)(void*, Index, int), void* ctx) {
    if (nchunks <= 0) return;
    threads = static_cast<int>(std::min<Index>(std::max(threads, 1), std::min<Index>(nchunks, kMaxThreads)));
    bool& inside = in_pool_region_flag();
    std::unique_lock<std::mutex> owner(run_mutex_, std::try_to_lock);
    if (threads <= 1 || inside || !owner.owns_lock()) {  // serial: nested, busy, or one thread
      const bool was = inside;
      inside = true;
      struct Restore {
        bool& f;
        bool v;
        ~Restore() { f = v; }
      } restore{inside, was};
      for (Index k = 0; k < nchunks; ++k) invoke(ctx, k, 0);
      return;
    }
    ensure_workers(threads - 1);
    invoke_ = invoke;
    ctx_ = ctx;
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    nchunks_ = static_cast<std::uint32_t>(nchunks);
    const std::uint64_t gen = ((job_.load(std::memory_order_relaxed) >> 32) + 1) & kGenMask;
    for (int t = 0; t < threads; ++t)  // the ranges, tagged with the job's generation
      ranges_[t].w.store(range(gen, std::uint64_t(nchunks * t / threads), std::uint64_t(nchunks * (t + 1) / threads)),
                         std::memory_order_release);
    // publish: generation | threads (seq_cst: pairs with the workers' sleep check)
    job_.store(gen << 32 | static_cast<std::uint64_t>(threads), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(sleep_mutex_); }
      sleep_cv_.notify_all();
    }
    inside = true;
    work(0, gen, threads);
    inside = false;
    wait_done();
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  /// Threads the pool has started (workers, the caller not counted).
  int workers() const { return static_cast<int>(started_.load()); }

  /// A pass of a model begins / ends (PassScope): idle workers spin longer in between.
  void begin_pass() { passes_.fetch_add(1, std::memory_order_relaxed); }
  void end_pass() { passes_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  static constexpr int kMaxThreads = 255;
  // job_: generation (24 bits) << 32 | threads. ranges_[t]: generation << 40 | begin << 20 | end,
  // the chunks [begin, end) of slot t's range not claimed yet (the owner takes begin, thieves end-1).
  static constexpr std::uint64_t kGenMask = 0xFFFFFF;
  static constexpr std::uint64_t range(std::uint64_t gen, std::uint64_t begin, std::uint64_t end) {
    return gen << 40 | begin << 20 | end;
  }
  static std::uint64_t gen_of_range(std::uint64_t w) { return w >> 40; }
  static std::uint64_t begin_of(std::uint64_t w) { return (w >> 20) & 0xFFFFF; }
  static std::uint64_t end_of(std::uint64_t w) { return w & 0xFFFFF; }
  static std::uint64_t gen_of_job(std::uint64_t j) { return j >> 32; }
  static int threads_of_job(std::uint64_t j) { return static_cast<int>(j & 0xFFFFFFFF); }

  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;

  static ThreadPool*& instance_ptr() {
    // Never destroyed: workers may still be blocked in the condition variable at exit. A forked
    // child gets a fresh pool (the parent's workers do not exist there).
    static ThreadPool* p = [] {
#if defined(__unix__) || defined(__APPLE__)
      pthread_atfork(nullptr, nullptr, [] { instance_ptr() = new ThreadPool(); });
#endif
      return new ThreadPool();
    }();
    return p;
  }

  /// Spins (pausing) until ready() or for limit() microseconds (re-read as it goes), yielding the
  /// core every kSpinMicros after the first kSpinMicros. Returns ready()'s last value.
  template <class Ready, class Limit>
  static bool spin_until(Ready ready, Limit limit) {
    const auto t0 = std::chrono::steady_clock::now();
    auto yielded = t0;
    for (int i = 0;; ++i) {
      if (ready()) return true;
      cpu_relax();
      if ((i & 63) != 63) continue;
      const auto now = std::chrono::steady_clock::now();
      if (now - t0 > std::chrono::microseconds(limit())) return ready();
      if (now - yielded > std::chrono::microseconds(kSpinMicros)) {
        std::this_thread::yield();  // let another program's thread on this core run
        yielded = std::chrono::steady_clock::now();
      }
    }
  }
  /// How long to spin: longer while a pass runs (PassScope).
  int spin_micros(int outside) const { return passes_.load(std::memory_order_relaxed) > 0 ? kPassSpinMicros : outside; }

  /// Claims and runs chunks of job `gen` (on `threads` threads) until none is left: those of the
  /// own range from the front, then the others' from the back. Returns true if it ran at least one.
  bool work(int slot, std::uint64_t gen, int threads) {
    bool any = false;
    for (int v = 0; v < threads; ++v) {
      const int t = (slot + v) % threads;
      std::atomic<std::uint64_t>& cur = ranges_[t].w;
      std::uint64_t w = cur.load(std::memory_order_acquire);
      while (gen_of_range(w) == gen && begin_of(w) < end_of(w)) {
        const bool own = v == 0;
        // owner: begin + 1 (chunk begin); thief: end - 1 (chunk end - 1)
        const std::uint64_t next = own ? w + (std::uint64_t(1) << 20) : w - 1;
        if (!cur.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
        // the chunk is ours; the job cannot change before it is done
        const Index chunk = static_cast<Index>(own ? begin_of(w) : end_of(w) - 1);
        const std::uint32_t n = nchunks_;  // read while our chunk keeps the job from changing
        if (!failed_.load(std::memory_order_relaxed)) {
          try {
            invoke_(ctx_, chunk, slot);
          } catch (...) {
            std::lock_guard<std::mutex> lk(error_mutex_);
            if (!error_) error_ = std::current_exception();
            failed_.store(true, std::memory_order_relaxed);
          }
        }
        any = true;
        if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n && slot != 0 &&
            caller_waiting_.load(std::memory_order_seq_cst)) {
          { std::lock_guard<std::mutex> lk(done_mutex_); }
          done_cv_.notify_one();
        }
        w = cur.load(std::memory_order_acquire);
      }
    }
    return any;
  }

  void wait_done() {
    const std::uint32_t n = nchunks_;
    // inside a pass the caller spins as long as an idle worker does
    if (spin_until([&] { return done_.load(std::memory_order_acquire) == n; },
                   [&] { return spin_micros(kWaitSpinMicros); }))
      return;
    std::unique_lock<std::mutex> lk(done_mutex_);
    caller_waiting_.store(true, std::memory_order_seq_cst);
    while (done_.load(std::memory_order_seq_cst) != n) done_cv_.wait(lk);
    caller_waiting_.store(false, std::memory_order_relaxed);
  }

  void ensure_workers(int n) {
    if (static_cast<int>(started_.load(std::memory_order_relaxed)) >= n) return;
    std::lock_guard<std::mutex> lk(start_mutex_);
    while (static_cast<int>(started_.load()) < n) {
      const int slot = static_cast<int>(started_.load()) + 1;
      std::thread([this, slot] { worker_loop(slot); }).detach();
      started_.fetch_add(1);
    }
  }

  /// A job this worker has not looked at yet, with a range for it.
  static bool new_job(std::uint64_t j, std::uint64_t seen, int slot) {
    return gen_of_job(j) != seen && threads_of_job(j) > slot;
  }

  void worker_loop(int slot) {
    in_pool_region_flag() = true;  // a worker's calls into the library always run serially
    std::uint64_t seen = gen_of_job(job_.load(std::memory_order_acquire));  // the last job looked at
    for (;;) {
      // spin for the next job, then block until one is published
      if (!spin_until([&] { return new_job(job_.load(std::memory_order_acquire), seen, slot); },
                      [&] { return spin_micros(kSpinMicros); })) {
        std::unique_lock<std::mutex> lk(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        while (!new_job(job_.load(std::memory_order_seq_cst), seen, slot)) sleep_cv_.wait(lk);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      const std::uint64_t j = job_.load(std::memory_order_acquire);
      seen = gen_of_job(j);
      if (threads_of_job(j) > slot) work(slot, seen, threads_of_job(j));  // slots stay below the thread count
    }
  }

  std::atomic<std::uint64_t> job_{0};
  struct alignas(64) Range {
    std::atomic<std::uint64_t> w{0};
  };
  Range ranges_[kMaxThreads];
  std::atomic<std::uint32_t> done_{0};
  std::uint32_t nchunks_ = 0;
  void (*invoke_)(void*, Index, int) = nullptr;
  void* ctx_ = nullptr;
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::mutex error_mutex_;

  std::mutex run_mutex_;  // held by the caller of the running job
  std::mutex start_mutex_;
  std::atomic<std::uint32_t> started_{0};

  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<int> passes_{0};  // PassScopes alive

  std::mutex done_mutex_;
  std::condition_variable done_cv_;
  std::atomic<bool> caller_waiting_{false};
};

}  // namespace detail

/// Marks a pass of a model (forward or backward over many layers): while one lives, the pool's idle
/// workers wait for the pass's next parallel loop spinning rather than blocked (see the file comment).
class PassScope {
 public:
  PassScope() { detail::ThreadPool::instance().begin_pass(); }
  ~PassScope() { detail::ThreadPool::instance().end_pass(); }
  PassScope(const PassScope&) = delete;
  PassScope& operator=(const PassScope&) = delete;
};

/// True on a thread that is running a chunk of a parallel loop (kerascpp's kernels then run serially).
inline bool in_parallel_region() { return detail::in_pool_region_flag(); }

/// Runs fn(chunk, slot) for every chunk in [0, nchunks) on up to `threads` threads of kerascpp's pool
/// (see the file comment). `slot` in [0, threads) names the thread running the chunk (for per-thread
/// scratch); it depends on timing, so results must depend on the chunk only.
template <class F>
void parallel_chunks(Index nchunks, int threads, F&& fn) {
  if (nchunks <= 0) return;
  auto& body = fn;
  if (nchunks > detail::ThreadPool::kMaxChunks) {
    // more chunks than one job holds: run them in consecutive groups
    const Index per = (nchunks + detail::ThreadPool::kMaxChunks - 1) / detail::ThreadPool::kMaxChunks;
    auto grouped = [&](Index g, int slot) {
      for (Index k = g * per, e = std::min(nchunks, (g + 1) * per); k < e; ++k) body(k, slot);
    };
    detail::ThreadPool::instance().run((nchunks + per - 1) / per, threads, grouped);
    return;
  }
  detail::ThreadPool::instance().run(nchunks, threads, body);
}

namespace detail {
/// Calls a copy of fn (when it can be copied): the copy's captures are locals the compiler knows
/// no store in the loop can change, so it keeps them in registers and vectorises the loop (through
/// the caller's closure, whose address escapes into the pool, a `#pragma omp simd` loop over captured
/// pointers stayed scalar: ReLU backward ran 5x slower).
template <class F>
inline void run_copy(F& fn, Index b, Index e) {
  if constexpr (std::is_copy_constructible_v<F>) {
    F local(fn);
    local(b, e);
  } else {
    fn(b, e);
  }
}
}  // namespace detail

/// Runs fn(begin, end) over [0, n) cut into contiguous ranges of at least `grain` indices, about
/// kChunksPerThread per thread (so a thread that is off the CPU leaves little work undone), on up
/// to `threads` threads. For loops whose iterations are independent (the split cannot change results).
template <class F>
void parallel_for(Index n, Index grain, int threads, F&& fn) {
  if (n <= 0) return;
  constexpr Index kChunksPerThread = 4;
  grain = std::max<Index>(grain, 1);
  const Index chunks =
      threads <= 1 ? 1 : std::max<Index>(1, std::min<Index>(n / grain, Index(threads) * kChunksPerThread));
  if (chunks <= 1) {
    const bool was = detail::in_pool_region_flag();
    detail::in_pool_region_flag() = true;
    struct Restore {
      bool v;
      ~Restore() { detail::in_pool_region_flag() = v; }
    } restore{was};
    detail::run_copy(fn, Index(0), n);
    return;
  }
  auto body = [&](Index k, int) { detail::run_copy(fn, n * k / chunks, n * (k + 1) / chunks); };
  detail::ThreadPool::instance().run(chunks, threads, body);
}

}  // namespace keras
