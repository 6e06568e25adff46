// zinf::zero — the offload engine's parameter path: home -> pinned -> device, all-gathered.
#include <cstring>
#include <optional>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#endif

#include "zero/engine_impl.h"

namespace zinf::zero {

// ---------------------------------------------------------------- one block's fetch

std::shared_ptr<Fetch> OffloadEngine::Impl::start_fetch(std::size_t b) {
  auto f = std::make_shared<Fetch>();
  Fetch* raw = f.get();
  if (!sharded_params) {
    f->done = fetch_worker.post([this, raw, b, keep = f] { load_home(b, *raw); });
    return f;
  }
  // Several ranks: the fetch worker brings this rank's shard to the device,
  // the communication worker gathers the others'. Posting both from the
  // compute thread, in its order, keeps the collectives in the same order on
  // every rank.
  std::shared_future<void> shard_done;
  if (opt.param_home != Tier::kDevice) shard_done = fetch_worker.post([this, raw, b, keep = f] { load_home(b, *raw); });
  f->done = comm_worker->post([this, raw, b, shard_done, keep = f] {
    if (shard_done.valid()) shard_done.get();
    else load_home(b, *raw);  // the shard already lives on the device
    gather(b, *raw);
  });
  return f;
}

void OffloadEngine::Impl::load_home(std::size_t b, Fetch& f) {
  wait_ready(b);  // the optimizer may still be writing this block's new weights
  const std::int64_t n = home_numel(b);
  if (opt.param_home == Tier::kDevice) {  // sharded on the device: nothing to move
    f.shard = device_params[b];
#ifdef ZINF_WITH_CUDA
    f.shard_ready = params_updated[b];
#endif
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor dst;
#ifdef ZINF_WITH_CUDA
  std::unique_ptr<c10::cuda::CUDAStreamGuard> guard;
  EventPtr start;
  if (is_cuda()) {
    guard = std::make_unique<c10::cuda::CUDAStreamGuard>(*h2d_stream);
    start = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
    start->record(*h2d_stream);
  }
#endif
  dst = torch::empty({n}, torch::TensorOptions().dtype(opt.dtype).device(opt.device));
  if (cpu_seg[b] >= 0) {
    const torch::Tensor src = host_tensor(cpu_params->host(cpu_seg[b]), n, opt.dtype);
    dst.copy_(src, /*non_blocking=*/is_cuda());  // pinned home: an asynchronous DMA on the side stream
  } else {
    // NVMe: pieces through the pool, the read of piece p+1 in flight while
    // piece p goes to the device; a buffer is reused once its copy is done.
    struct Piece {
      offload::PinnedPool::Lease lease;
      io::Ticket read = 0;
      std::int64_t offset = 0, bytes = 0;  // within the segment
#ifdef ZINF_WITH_CUDA
      EventPtr copied;
#endif
    };
    const std::int64_t total = n * pbytes(), piece = fetch_pool->buffer_bytes();
    const std::size_t buffers = std::size_t(fetch_pool->count());
    auto issue = [&](std::int64_t offset) {
      Piece p;
      p.lease = fetch_pool->acquire();
      p.offset = offset;
      p.bytes = std::min(piece, total - offset);
      p.read = nvme_params->read(nvme_seg[b], p.offset, p.bytes, p.lease.data());
      return p;
    };
    std::deque<Piece> copying;  // copies queued whose buffers are not free yet
    auto free_oldest = [&] {
#ifdef ZINF_WITH_CUDA
      if (copying.front().copied) copying.front().copied->synchronize();
#endif
      copying.pop_front();
    };
    Piece cur = issue(0);
    for (;;) {
      const std::int64_t next = cur.offset + cur.bytes;
      std::optional<Piece> ahead;  // the next piece's read, in flight while this one is copied
      if (next < total && buffers >= 2) {
        while (copying.size() + 2 > buffers) free_oldest();
        ahead = issue(next);
      }
      const auto tw = std::chrono::steady_clock::now();
      nvme_params->wait(cur.read);
      add_time(&StepTimeline::nvme_wait_s, seconds_since(tw));
      const torch::Tensor src = host_tensor(cur.lease.data(), cur.bytes / pbytes(), opt.dtype);
      dst.narrow(0, cur.offset / pbytes(), cur.bytes / pbytes()).copy_(src, /*non_blocking=*/is_cuda());
#ifdef ZINF_WITH_CUDA
      if (is_cuda()) {
        cur.copied = std::make_shared<at::cuda::CUDAEvent>();
        cur.copied->record(*h2d_stream);
      }
#endif
      copying.push_back(std::move(cur));
      if (ahead) {
        cur = std::move(*ahead);
        continue;
      }
      if (next >= total) break;
      while (!copying.empty()) free_oldest();  // a pool of one buffer: no read ahead
      cur = issue(next);
    }
    while (!copying.empty()) free_oldest();  // buffers go back to the pool only when their DMA is done
  }
  h2d += n * pbytes();
#ifdef ZINF_WITH_CUDA
  if (is_cuda()) {
    auto end = std::make_shared<at::cuda::CUDAEvent>(cudaEventDefault);
    end->record(*h2d_stream);
    {
      std::lock_guard<std::mutex> lock(timeline_mu);
      h2d_events.emplace_back(start, end);
    }
    if (sharded_params) f.shard_ready = end;
    else f.ready = end;
  }
#endif
  if (!is_cuda()) add_time(&StepTimeline::h2d_s, seconds_since(t0));
  if (sharded_params) f.shard = dst;
  else f.full = dst;
}

void OffloadEngine::Impl::gather(std::size_t b, Fetch& f) {
  const auto t0 = std::chrono::steady_clock::now();
  const BlockPart& p = parts[b];
#ifdef ZINF_WITH_CUDA
  std::unique_ptr<c10::cuda::CUDAStreamGuard> guard;
  if (is_cuda()) {
    guard = std::make_unique<c10::cuda::CUDAStreamGuard>(*comm_stream);
    if (f.shard_ready) f.shard_ready->block(*comm_stream);
    f.shard.record_stream(*comm_stream);
  }
#endif
  torch::Tensor full = torch::empty({world * p.shard}, torch::TensorOptions().dtype(opt.dtype).device(opt.device));
  opt.comm->all_gather(f.shard, full);
#ifdef ZINF_WITH_CUDA
  if (is_cuda()) {
    f.ready = std::make_shared<at::cuda::CUDAEvent>();
    f.ready->record(*comm_stream);
  }
#endif
  f.full = full.narrow(0, 0, p.numel);
  f.shard = torch::Tensor();
  add_time(&StepTimeline::comm_s, seconds_since(t0));
}

// ---------------------------------------------------------------- prefetch and acquire

void OffloadEngine::Impl::prefetch(std::size_t b) {
  if (!opt.prefetch || !fetch_needed()) return;
  std::lock_guard<std::mutex> lock(fetch_mu);
  if (prefetched.count(b)) return;
  prefetched[b] = start_fetch(b);
}

void OffloadEngine::Impl::prefetch_call(std::size_t call) {
  if (call < schedule.size())
    for (std::size_t b : schedule[call]) prefetch(b);
}

torch::Tensor OffloadEngine::Impl::acquire(std::size_t b) {
  if (!fetch_needed()) {  // whole blocks on the device
    wait_ready(b);
    torch::Tensor t = device_params[b];
#ifdef ZINF_WITH_CUDA
    if (is_cuda() && params_updated[b]) params_updated[b]->block(c10::cuda::getCurrentCUDAStream());
#endif
    return t.numel() == parts[b].numel ? t : t.narrow(0, 0, parts[b].numel);
  }
  std::shared_ptr<Fetch> f;
  {
    std::lock_guard<std::mutex> lock(fetch_mu);
    auto it = prefetched.find(b);
    if (it != prefetched.end()) {
      f = it->second;
      prefetched.erase(it);
    }
  }
  if (f) {
    ++hits;
  } else {
    ++misses;
    f = start_fetch(b);
  }
  const auto t0 = std::chrono::steady_clock::now();
  f->done.get();
  add_time(&StepTimeline::fetch_wait_s, seconds_since(t0));
  torch::Tensor dev = std::move(f->full);
#ifdef ZINF_WITH_CUDA
  if (is_cuda()) {
    // Written on a side stream, used on the compute stream: order by event,
    // and keep the memory from being reused before the compute is done.
    const auto current = c10::cuda::getCurrentCUDAStream();
    if (f->ready) f->ready->block(current);
    dev.record_stream(current);
  }
#endif
  return dev;
}

std::vector<torch::Tensor> OffloadEngine::Impl::acquire_all(const std::vector<std::size_t>& list) {
  std::vector<torch::Tensor> flats;
  for (std::size_t b : list) flats.push_back(acquire(b));
  return flats;
}

void OffloadEngine::Impl::drop_prefetches() {
  std::map<std::size_t, std::shared_ptr<Fetch>> pending;
  {
    std::lock_guard<std::mutex> lock(fetch_mu);
    pending.swap(prefetched);
  }
  for (auto& kv : pending) kv.second->done.wait();
  for (auto& kv : pending) kv.second->done.get();  // a failed prefetch still reports its error
}

}  // namespace zinf::zero
