// keras::distribute: data-parallel fit, evaluate and predict over MPI (Open MPI on Debian:
// libopenmpi-dev openmpi-bin). Opt-in: include this header and link the CMake target
// kerascpp::mpi (MPI::MPI_CXX); nothing else in kerascpp includes it or needs MPI.
//
//   keras::distribute::MPI mpi(argc, argv);                       // MPI_Init ... MPI_Finalize
//   model.set_distribution(keras::distribute::DataParallel<float>::make(mpi));
//   model.fit(x, y, {.epochs = 5, .batch_size = 64});             // 64 = the global batch
//   // mpirun -np 4 ./train                                         (docs/distributed.md)
//
// Every process builds the same model and passes the same, whole data; the trainer shards it
// (trainers/distribution.hpp), starts every replica from the chief's weights (broadcast), sums
// each step's sample-weighted gradients with MPI_Allreduce in fixed-size buckets of the flat
// gradient (the same buckets, in the same order, on every replica; each reduced as soon as it is
// packed), and sums losses and metric states at the end of each epoch and evaluation. Blocking
// collectives: on this machine Open MPI's tuned MPI_Allreduce of the top-blocks step's 6.7 MB
// took 2.3-2.9 ms at best, MPI_Iallreduce in 4 MiB buckets 16-24 ms (docs/distributed.md).
//
// Faults: the communicator returns errors instead of aborting (MPI_ERRORS_RETURN): a failed
// collective throws DistributedError naming it, and the MPI object then ends the job with
// MPI_Abort instead of waiting in MPI_Finalize for a replica that is gone. Every collective has a
// deadline (DataParallelOptions::timeout_seconds) kept by a watchdog thread: past it the process
// prints which collective did not complete and exits with code 3, and mpirun ends the others (a
// blocked MPI call cannot be interrupted). A replica that dies outright is noticed by mpirun,
// which ends the others.
#pragma once
#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../core/core.hpp"
#include "../core/variable.hpp"
#include "../trainers/distribution.hpp"

namespace keras::distribute {

/// A collective failed or did not complete in time: a replica has died or hangs.
class DistributedError : public Error {
 public:
  using Error::Error;
};

/// MPI for the life of a program: MPI_Init_thread (funneled: only the main thread calls MPI) at
/// construction, MPI_Finalize at destruction, or MPI_Abort after a DistributedError so that no
/// process waits for one that is gone. One per program.
class MPI {
 public:
  MPI(int& argc, char**& argv) { init(&argc, &argv); }
  MPI() { init(nullptr, nullptr); }
  MPI(const MPI&) = delete;
  MPI& operator=(const MPI&) = delete;
  ~MPI() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || !owner_) return;
    if (failed_) {
      std::cerr << std::flush;
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_chief() const { return rank_ == 0; }
  /// kerascpp's own communicator (a duplicate of MPI_COMM_WORLD that returns errors).
  MPI_Comm comm() const { return comm_; }
  /// Marks the job failed: the destructor aborts every process instead of finalizing.
  void mark_failed() { failed_ = true; }
  bool failed() const { return failed_; }
  /// Ends every process of the job now, after printing `message` (this rank's prefix added).
  [[noreturn]] void abort(const std::string& message, int code = 3) {
    std::cerr << "kerascpp distribute: rank " << rank_ << " of " << size_ << ": " << message << "\n" << std::flush;
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool owner_ = false, failed_ = false;
  void init(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw DistributedError("MPI_Init_thread failed (is this program started by mpirun?)");
      owner_ = true;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
};

/// Options of DataParallel.
struct DataParallelOptions {
  /// Gradient bucket size: each bucket is one MPI_Allreduce, run as soon as it is packed. Large
  /// enough to amortise the latency of a collective (docs/distributed.md).
  Index bucket_bytes = 4 << 20;
  /// Longest wait for one collective; then a replica is taken for dead and the process exits.
  /// Covers the time the other replicas may spend between collectives (the chief writing a
  /// checkpoint, an uneven shard of a feature cache). The environment variable
  /// KERASCPP_MPI_TIMEOUT (seconds) overrides it.
  double timeout_seconds = 300;
};

/// What DataParallel has done so far (bench/ reads these for the communication share).
struct DataParallelStats {
  Index steps = 0;              ///< gradient reductions
  double gradient_bytes = 0;    ///< bytes each replica contributed to them
  double gradient_seconds = 0;  ///< time in reduce_gradients (packing, the allreduce, unpacking)
  double other_seconds = 0;     ///< time in the other collectives (step counts, metrics, gathers)
};

namespace detail {
template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else
    static_assert(sizeof(T) == 0, "DataParallel: float or double");
}
}  // namespace detail

/// Ends the process when a collective has not completed by its deadline: prints what it waited
/// for, then exits with code 3 (mpirun then ends the other processes of the job).
class Watchdog {
 public:
  Watchdog() : thread_([this] { run(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(std::string message, double seconds) {
    std::lock_guard<std::mutex> lock(m_);
    message_ = std::move(message);
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    armed_ = true;
    ++generation_;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(m_);
    armed_ = false;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::string message_;
  std::chrono::steady_clock::time_point deadline_;
  bool armed_ = false, stop_ = false;
  std::uint64_t generation_ = 0;
  std::thread thread_;
  void run() {
    std::unique_lock<std::mutex> lock(m_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      const std::uint64_t g = generation_;
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ && generation_ == g && !stop_) {
        std::fprintf(stderr, "kerascpp distribute: %s\n", message_.c_str());
        std::fflush(stderr);
        std::fflush(stdout);
        std::_Exit(3);
      }
    }
  }
};

/// Data parallelism over the processes of an MPI job (trainers::Distribution over MPI).
template <class T = float>
class DataParallel : public trainers::Distribution<T> {
 public:
  explicit DataParallel(MPI& mpi, DataParallelOptions o = {}) : mpi_(&mpi), o_(o) {
    if (o_.bucket_bytes < static_cast<Index>(sizeof(T)))
      throw ValueError("DataParallel: bucket_bytes must be at least " + std::to_string(sizeof(T)) + ", got " +
                       std::to_string(o_.bucket_bytes));
    if (const char* e = std::getenv("KERASCPP_MPI_TIMEOUT")) {
      char* end = nullptr;
      const double v = std::strtod(e, &end);
      if (end == e || *end != '\0' || !(v > 0))
        throw ValueError(std::string("KERASCPP_MPI_TIMEOUT must be a number of seconds > 0, got '") + e + "'");
      o_.timeout_seconds = v;
    }
    if (!(o_.timeout_seconds > 0))
      throw ValueError("DataParallel: timeout_seconds must be > 0, got " + std::to_string(o_.timeout_seconds));
  }
  static std::shared_ptr<DataParallel> make(MPI& mpi, DataParallelOptions o = {}) {
    return std::make_shared<DataParallel>(mpi, o);
  }

  int num_replicas() const override { return mpi_->size(); }
  int replica_id() const override { return mpi_->rank(); }
  const DataParallelStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }
  const DataParallelOptions& options() const { return o_; }

  void broadcast(const std::vector<Variable<T>*>& vars) override {
    Timer t(stats_.other_seconds);
    pack(vars, false, 1.0, false, [&](T* p, int n) {
      collective("the broadcast of the chief's weights", "MPI_Bcast (weights)",
                 [&] { return MPI_Bcast(p, n, detail::mpi_type<T>(), 0, mpi_->comm()); });
    });
    if (!this->is_chief()) unpack(vars, false);
  }
  std::uint64_t broadcast(std::uint64_t v) override {
    Timer t(stats_.other_seconds);
    collective("a broadcast from the chief", "MPI_Bcast",
               [&] { return MPI_Bcast(&v, 1, MPI_UINT64_T, 0, mpi_->comm()); });
    return v;
  }
  void all_sum(std::vector<double>& v) override {
    if (v.empty()) return;
    Timer t(stats_.other_seconds);
    collective("the sum of sample counts, losses or metric states", "MPI_Allreduce (counts, losses, metrics)", [&] {
      return MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, mpi_->comm());
    });
  }
  void reduce_gradients(const std::vector<Variable<T>*>& vars, Index local, Index total) override {
    Timer t(stats_.gradient_seconds);
    if (total <= 0) throw ValueError("DataParallel::reduce_gradients: the step has no samples");
    // Each bucket is reduced as soon as it is packed, in the same order on every replica.
    const double scale = static_cast<double>(local) / static_cast<double>(total);
    const std::string what = "the allreduce of the gradients of step " + std::to_string(stats_.steps + 1);
    pack(vars, true, scale, local == 0, [&](T* p, int n) {
      collective(what, "MPI_Allreduce (gradients)",
                 [&] { return MPI_Allreduce(MPI_IN_PLACE, p, n, detail::mpi_type<T>(), MPI_SUM, mpi_->comm()); });
    });
    unpack(vars, true);
    ++stats_.steps;
    stats_.gradient_bytes += static_cast<double>(flat_.size() * sizeof(T));
  }
  // Long for a reason: the four collectives of one gather (numbered below) must run in this order
  // on every rank, and read best in one place.
  Tensor<T> gather_steps(const Tensor<T>& rows, const std::vector<Index>& chunks, bool to_all) override {
    Timer t(stats_.other_seconds);
    const int R = mpi_->size();
    // 1. every replica's header: chunks, rows, rank and dims of its tensor
    constexpr int H = 11;  // chunks, rows, rank, 8 dims
    std::array<long long, H> mine{};
    Index nrows = 0;
    for (Index c : chunks) nrows += c;
    if (nrows != (rows.rank() > 0 ? rows.dim(0) : 0))
      throw ShapeError("DataParallel::gather_steps: the chunks add up to " + std::to_string(nrows) +
                       " rows, the tensor has " +
                       (rows.rank() > 0 ? std::to_string(rows.dim(0)) : std::string("none")));
    if (rows.rank() > 8) throw ShapeError("DataParallel::gather_steps: at most 8 axes, got " + shape_str(rows.shape()));
    mine[0] = static_cast<long long>(chunks.size());
    mine[1] = nrows;
    mine[2] = rows.rank();
    for (int i = 0; i < rows.rank(); ++i) mine[3 + i] = rows.dim(i);
    std::vector<long long> heads(static_cast<std::size_t>(H) * R);
    collective("the exchange of the shapes of a gather", "MPI_Allgather (shapes)", [&] {
      return MPI_Allgather(mine.data(), H, MPI_LONG_LONG, heads.data(), H, MPI_LONG_LONG, mpi_->comm());
    });
    auto head = [&](int r, int i) { return heads[static_cast<std::size_t>(r) * H + i]; };
    // the row shape, from the first replica with rows; every other one must agree
    int ref = -1;
    for (int r = 0; r < R && ref < 0; ++r)
      if (head(r, 1) > 0) ref = r;
    if (ref < 0) return Tensor<T>();
    Shape shape(static_cast<std::size_t>(head(ref, 2)));
    for (std::size_t i = 0; i < shape.size(); ++i) shape[i] = head(ref, 3 + static_cast<int>(i));
    for (int r = 0; r < R; ++r) {
      if (head(r, 1) == 0) continue;
      bool same = head(r, 2) == head(ref, 2);
      for (int i = 1; same && i < head(ref, 2); ++i) same = head(r, 3 + i) == head(ref, 3 + i);
      if (!same)
        throw ShapeError("DataParallel::gather_steps: replicas " + std::to_string(ref) + " and " + std::to_string(r) +
                         " have rows of different shapes");
    }
    const Index row = std::max<Index>(1, rows_size(shape));
    // 2. every replica's chunk sizes
    std::vector<int> ccount(R), cdisp(R);
    long long nchunks = 0, total_rows = 0;
    for (int r = 0; r < R; ++r) {
      ccount[r] = static_cast<int>(head(r, 0));
      cdisp[r] = static_cast<int>(nchunks);
      nchunks += head(r, 0);
      total_rows += head(r, 1);
    }
    std::vector<long long> mychunks(chunks.begin(), chunks.end()),
        allchunks(static_cast<std::size_t>(std::max<long long>(nchunks, 1)));
    collective("the exchange of the chunk sizes of a gather", "MPI_Allgatherv (chunks)", [&] {
      return MPI_Allgatherv(mychunks.data(), static_cast<int>(mychunks.size()), MPI_LONG_LONG, allchunks.data(),
                            ccount.data(), cdisp.data(), MPI_LONG_LONG, mpi_->comm());
    });
    // 3. the rows (counted in rows: one contiguous datatype per row)
    if (total_rows > std::numeric_limits<int>::max())
      throw ValueError("DataParallel::gather_steps: more than 2^31 rows");
    MPI_Datatype row_t;
    check(MPI_Type_contiguous(static_cast<int>(row), detail::mpi_type<T>(), &row_t), "MPI_Type_contiguous");
    MPI_Type_commit(&row_t);
    std::vector<int> rcount(R), rdisp(R);
    long long off = 0;
    for (int r = 0; r < R; ++r) {
      rcount[r] = static_cast<int>(head(r, 1));
      rdisp[r] = static_cast<int>(off);
      off += head(r, 1);
    }
    const bool receive = to_all || this->is_chief();
    std::vector<T> buf(receive ? static_cast<std::size_t>(total_rows * row) : 0);
    const T* send = nrows > 0 ? rows.data() : buf.data();
    collective("the gather of rows (predictions or cached features)",
               to_all ? "MPI_Allgatherv (rows)" : "MPI_Gatherv (rows)", [&] {
                 return to_all ? MPI_Allgatherv(send, static_cast<int>(nrows), row_t, buf.data(), rcount.data(),
                                                rdisp.data(), row_t, mpi_->comm())
                               : MPI_Gatherv(send, static_cast<int>(nrows), row_t, buf.data(), rcount.data(),
                                             rdisp.data(), row_t, 0, mpi_->comm());
               });
    MPI_Type_free(&row_t);
    if (!receive) return Tensor<T>();
    // 4. in step order: step s of replica 0, of replica 1, ...
    shape[0] = static_cast<Index>(total_rows);
    Tensor<T> out(shape);
    std::vector<long long> at(R), next_chunk(R, 0);
    for (int r = 0; r < R; ++r) at[r] = rdisp[r];
    Index w = 0;
    for (bool more = true; more;) {
      more = false;
      for (int r = 0; r < R; ++r) {
        if (next_chunk[r] >= ccount[r]) continue;
        const long long c = allchunks[static_cast<std::size_t>(cdisp[r] + next_chunk[r]++)];
        std::copy(buf.data() + at[r] * row, buf.data() + (at[r] + c) * row, out.data() + w * row);
        at[r] += c;
        w += static_cast<Index>(c);
        more = true;
      }
    }
    return out;
  }

 private:
  MPI* mpi_;
  DataParallelOptions o_;
  DataParallelStats stats_;
  std::vector<T> flat_;  ///< the flat gradient (or weights) of one call, kept between steps

  struct Timer {
    double& acc;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    ~Timer() { acc += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  };
  static Index rows_size(const Shape& s) {
    Index n = 1;
    for (std::size_t i = 1; i < s.size(); ++i) n *= s[i];
    return n;
  }
  Index bucket_elems() const {
    return std::clamp<Index>(o_.bucket_bytes / static_cast<Index>(sizeof(T)), 1, std::numeric_limits<int>::max());
  }
  /// The variables' values (grads = false) or scaled gradients (zero: zeros) one after another in
  /// flat_; on_bucket(ptr, n) as soon as each bucket of it is complete.
  template <class F>
  void pack(const std::vector<Variable<T>*>& vars, bool grads, double scale, bool zero, F on_bucket) {
    std::size_t n = 0;
    for (auto* v : vars) n += static_cast<std::size_t>(v->value.size());
    flat_.resize(n);
    const std::size_t b = static_cast<std::size_t>(bucket_elems());
    std::size_t w = 0, sent = 0;
    const T s = static_cast<T>(scale);
    for (auto* v : vars) {
      const std::size_t m = static_cast<std::size_t>(v->value.size());
      if (!grads) {
        std::copy(v->value.data(), v->value.data() + m, flat_.data() + w);
      } else if (zero || v->grad.size() != v->value.size()) {
        std::fill(flat_.data() + w, flat_.data() + w + m, T(0));
      } else {
        const T* g = v->grad.data();
        T* d = flat_.data() + w;
        for (std::size_t i = 0; i < m; ++i) d[i] = g[i] * s;
      }
      w += m;
      for (; sent + b <= w; sent += b) on_bucket(flat_.data() + sent, static_cast<int>(b));
    }
    if (sent < w) on_bucket(flat_.data() + sent, static_cast<int>(w - sent));
  }
  /// flat_ back into the variables: gradients after a reduction, values after a broadcast.
  void unpack(const std::vector<Variable<T>*>& vars, bool grads) {
    std::size_t w = 0;
    for (auto* v : vars) {
      const std::size_t m = static_cast<std::size_t>(v->value.size());
      Tensor<T>& dst = grads ? v->grad : v->value;
      if (grads && dst.shape() != v->value.shape()) dst.resize(v->value.shape());
      std::copy(flat_.data() + w, flat_.data() + w + m, dst.data());
      if (!grads) v->changed();  // new values: caches of them (packed kernels) are stale
      w += m;
    }
  }

  void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    mpi_->mark_failed();
    throw DistributedError(std::string(what) + " failed on rank " + std::to_string(mpi_->rank()) + " of " +
                           std::to_string(mpi_->size()) + ": " + std::string(msg, static_cast<std::size_t>(len)) +
                           " (a replica has probably died)");
  }
  /// One blocking collective under the watchdog's deadline; an MPI error throws DistributedError.
  template <class F>
  void collective(const std::string& what, const char* call_name, F call) {
    if (!watchdog_) watchdog_ = std::make_unique<Watchdog>();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", o_.timeout_seconds);
    watchdog_->arm("rank " + std::to_string(mpi_->rank()) + " of " + std::to_string(mpi_->size()) + ": " + what +
                       " has not completed after " + secs +
                       " s: another replica has died or hangs (timeout: DataParallelOptions::timeout_seconds or "
                       "KERASCPP_MPI_TIMEOUT); ending the job",
                   o_.timeout_seconds);
    const int rc = call();
    watchdog_->disarm();
    check(rc, call_name);
  }
  std::unique_ptr<Watchdog> watchdog_;
};

}  // namespace keras::distribute
