// Benchmark: decode + resize of the shared flower photos (3,117 JPEGs, mostly 320x240) to
// 192x192, in images/s, on 1 and 2 threads.
//   bench_data [flower_photos_dir] [max_threads]
// Prints, per thread count:
//   raw       decode_image + resize_image into one reused buffer per thread (the kernel);
//   pipeline  image_dataset_from_directory(batch 32, 192x192, prefetch 2) iterated once, including
//             batching (the file check pre-pass at construction is timed separately);
//   cached    the second epoch of .cache() (uint8 in memory, ~345 MB for all photos).
#include <keras/data/data.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#ifndef KERASCPP_SHARED_DIR
#define KERASCPP_SHARED_DIR "../shared"
#endif

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  using namespace keras;
  const std::string dir = argc > 1 ? argv[1] : std::string(KERASCPP_SHARED_DIR) + "/data/flower_photos";
  const int max_threads = argc > 2 ? std::stoi(argv[2]) : 2;
  const Index H = 192, W = 192;

  auto idx = data::index_directory(dir, "inferred", {}, false, 0);
  const Index n = static_cast<Index>(idx.file_paths.size());
  std::printf("%lld images in %s, resized to %lldx%lld\n", static_cast<long long>(n), dir.c_str(),
              static_cast<long long>(H), static_cast<long long>(W));

  // Warm the page cache so that the first measurement is not a disk benchmark.
  for (const auto& f : idx.file_paths) (void)data::read_file_bytes(f);

  for (int threads = 1; threads <= max_threads; ++threads) {
    set_num_threads(threads);

    // raw kernel
    double t0 = now();
    Index failed = 0;
    double checksum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failed, checksum)
    {
      std::vector<float> out(static_cast<std::size_t>(H * W * 3));
#pragma omp for schedule(dynamic, 8)
      for (Index i = 0; i < n; ++i) {
        try {
          data::Image img = data::decode_image(idx.file_paths[i], 3);
          data::resize_image(img.pixels.data(), img.width, 3, data::Window{0, 0, img.height, img.width}, out.data(), H,
                             W);
          checksum += out[0];
        } catch (const Error&) {
          ++failed;
        }
      }
    }
    double raw = now() - t0;

    // full pipeline
    data::ImageDatasetOptions o;
    o.image_size = {H, W};
    o.batch_size = 32;
    o.shuffle = false;
    o.verbose = false;
    t0 = now();
    auto ds = utils::image_dataset_from_directory(dir, o);
    double check = now() - t0;
    t0 = now();
    Index seen = 0;
    for (auto& b : ds) seen += b.x.dim(0);
    double pipe = now() - t0;
    auto cached = ds.cache();
    for (auto& b : cached) (void)b;  // first epoch fills the cache
    t0 = now();
    Index seen2 = 0;
    for (auto& b : cached) seen2 += b.x.dim(0);
    double cache_epoch = now() - t0;

    std::printf(
        "threads %d: raw decode+resize %7.1f images/s (%.2f s, %lld failed) | pipeline %7.1f images/s "
        "(%.2f s, %lld images; file check %.2f s) | cached epoch %7.1f images/s\n",
        threads, static_cast<double>(n) / raw, raw, static_cast<long long>(failed), static_cast<double>(seen) / pipe,
        pipe, static_cast<long long>(seen), check, static_cast<double>(seen2) / cache_epoch);
    if (checksum < 0) std::printf("?\n");
  }
  return 0;
}
