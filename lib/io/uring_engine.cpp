// zinf::io — UringEngine: one io_uring, one worker thread that keeps it full.
#include "io/uring_engine.h"

#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/units.h"
#include "io/aligned_buffer.h"
#include "io/checksum.h"
#include "log/log.h"

namespace zinf::io {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxRetries = 3;          // EAGAIN / EINTR, per piece
constexpr unsigned kFixedBufferSlots = 64;
static_assert(kCrcPageBytes == kDirectAlignment, "checksum pages are O_DIRECT pages");

std::string hex32(std::uint32_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

const char* op_name(Op op) { return op == Op::kRead ? "read" : "write"; }

// One submit() call in progress.
struct Job {
  Ticket id = 0;
  Request req;
  int fixed = -1;          // registered buffer index, -1 when none
  std::int64_t next = 0;   // next request byte to hand to a piece
  int in_flight = 0;       // pieces submitted and not yet completed
  int checks = 0;          // completed pieces whose checksum is still being verified
  std::string error;       // first failure
  std::string hint;
  bool done = false;
};

// One io_uring operation (a piece of a Job); slot index = user_data.
struct Piece {
  Job* job = nullptr;
  std::int64_t rel = 0;       // offset of the piece inside the request
  std::int64_t len = 0;       // payload bytes
  std::int64_t io_len = 0;    // bytes asked of the kernel (len padded to 4096 when bounced)
  std::int64_t progress = 0;  // bytes the kernel has done so far (short transfers continue)
  char* mem = nullptr;        // where the kernel reads/writes: user memory or the bounce block
  bool bounced = false;
  int retries = 0;
};

// Checksum work done by the worker outside the lock, while the device works:
// recording a written piece's page CRCs after it was submitted, verifying a
// read one's after it completed.
struct CrcTask {
  Job* job = nullptr;
  const char* mem = nullptr;  // user memory of the piece
  std::int64_t rel = 0;       // piece offset in the request, a multiple of 4096
  std::int64_t len = 0;       // bytes
  bool verify = false;        // read: compare; write: record
  std::string pad;            // read of a tail: the rest of its last page, as read (from the bounce block)
  std::vector<std::uint32_t> crcs;  // [pages of the piece] computed outside the lock
};

// CRC32C of each page of the piece as it is on disk: a written tail is padded
// with zeros; a read tail is continued over the padding that was read.
void page_crcs(CrcTask& t) {
  const std::size_t full = static_cast<std::size_t>(t.len) / kCrcPageBytes;
  const std::size_t rest = static_cast<std::size_t>(t.len) % kCrcPageBytes;
  t.crcs.resize(full + (rest ? 1 : 0));
  crc32c_pages(t.mem, full, t.crcs.data());
  if (rest == 0) return;
  const std::uint32_t head = crc32c(t.mem + full * kCrcPageBytes, rest);
  t.crcs[full] = t.verify ? crc32c(t.pad.data(), t.pad.size(), head) : crc32c_zeros(kCrcPageBytes - rest, head);
}

struct FixedBuffer {
  const char* base = nullptr;
  std::int64_t bytes = 0;
};

}  // namespace

struct UringEngine::Impl {
  EngineOptions opt;
  io_uring ring{};
  bool fixed_table = false;  // sparse registered-buffer table set up
  bool ring_ok = false;      // false: io_uring unavailable, pieces run as pread/pwrite on the worker
  std::vector<int> sync_ready;  // without a ring: prepared pieces waiting for the worker
  std::vector<FixedBuffer> fixed;

  mutable std::mutex mu;
  std::condition_variable work_cv;  // worker: new jobs or stop
  std::condition_variable done_cv;  // waiters: a job finished
  std::map<Ticket, std::unique_ptr<Job>> jobs;  // not yet reported to a waiter
  std::deque<Job*> queue;                        // jobs with bytes not yet handed to pieces
  Ticket next_ticket = 1;
  bool stop = false;

  // Worker-owned.
  std::vector<Piece> pieces;
  std::vector<int> free_slots;
  std::vector<AlignedBuffer> bounce;  // one block per slot, allocated on first use
  int in_flight = 0;
  int unsubmitted = 0;
  std::vector<CrcTask> crc_tasks;

  IoCounters counters;
  Clock::time_point busy_since;

  std::thread worker;

  // ------------------------------------------------------------ helpers
  bool has_work_locked() const { return stop || (!queue.empty() && !free_slots.empty()); }

  void fail(Job& job, const std::string& message, const std::string& hint) {
    if (job.error.empty()) {
      job.error = message;
      job.hint = hint;
    }
  }

  void finish_if_done(Job& job) {
    const bool issued_all = job.next >= job.req.bytes || !job.error.empty();
    if (issued_all && job.in_flight == 0 && job.checks == 0 && !job.done) {
      job.done = true;  // a waiter may free it from now on: no queue entry may point at it
      queue.erase(std::remove(queue.begin(), queue.end(), &job), queue.end());
      if (job.error.empty()) {
        ++counters.requests;
      }
      done_cv.notify_all();
    }
  }

  std::string where(const Job& job, std::int64_t rel) const {
    return "'" + job.req.file->path() + "' at offset " + std::to_string(job.req.offset + rel);
  }

  // Fills one io_uring SQE for piece `p` from its current progress.
  void prep(int slot) {
    if (!ring_ok) {
      sync_ready.push_back(slot);
      return;
    }
    Piece& p = pieces[slot];
    Job& job = *p.job;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);  // never null: in flight <= queue depth <= SQ size
    const std::int64_t off = job.req.offset + p.rel + p.progress;
    char* mem = p.mem + p.progress;
    const unsigned n = static_cast<unsigned>(p.io_len - p.progress);
    const int fd = job.req.file->fd();
    if (!p.bounced && job.fixed >= 0) {
      if (job.req.op == Op::kRead)
        io_uring_prep_read_fixed(sqe, fd, mem, n, static_cast<__u64>(off), job.fixed);
      else
        io_uring_prep_write_fixed(sqe, fd, mem, n, static_cast<__u64>(off), job.fixed);
    } else if (job.req.op == Op::kRead) {
      io_uring_prep_read(sqe, fd, mem, n, static_cast<__u64>(off));
    } else {
      io_uring_prep_write(sqe, fd, mem, n, static_cast<__u64>(off));
    }
    io_uring_sqe_set_data64(sqe, static_cast<__u64>(slot));
    ++unsubmitted;
    if (opt.single_submit) submit_pending();
  }

  void submit_pending() {
    if (!ring_ok) return;
    while (unsubmitted > 0) {
      const int rc = io_uring_submit(&ring);
      if (rc >= 0) {
        unsubmitted -= std::min(unsubmitted, rc);
        if (rc == 0) break;
      } else if (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        break;  // the completions of what did go in still arrive; the rest surfaces as a stuck ring below
      }
    }
  }

  // Hands the next piece of queued jobs to free slots. Called with `mu` held.
  void issue_locked() {
    while (!free_slots.empty() && !queue.empty()) {
      Job& job = *queue.front();
      if (!job.error.empty() || job.next >= job.req.bytes) {
        queue.pop_front();
        finish_if_done(job);
        continue;
      }
      const int slot = free_slots.back();
      free_slots.pop_back();
      Piece& p = pieces[slot];
      p = Piece{};
      p.job = &job;
      p.rel = job.next;
      p.len = std::min(opt.block_size, job.req.bytes - job.next);
      job.next += p.len;
      char* user = static_cast<char*>(job.req.data) + p.rel;
      const bool direct = job.req.file->direct();
      const bool whole_pages = p.len % kDirectAlignment == 0;
      const bool aligned = reinterpret_cast<std::uintptr_t>(user) % kDirectAlignment == 0 && whole_pages;
      // Checksummed tails always bounce: the whole last page is written
      // (zero-padded) and read, so its CRC covers a known 4096 bytes.
      if ((direct && !aligned) || (job.req.page_crc && !whole_pages)) {
        if (bounce[slot].empty()) {
          try {
            bounce[slot] = AlignedBuffer(opt.block_size);
          } catch (const Error& e) {
            fail(job, std::string(op_name(job.req.op)) + " in " + where(job, p.rel) + ": " + e.what(), e.hint());
            free_slots.push_back(slot);
            continue;
          }
        }
        p.bounced = true;
        p.mem = bounce[slot].as<char>();
        p.io_len = round_up(p.len, kDirectAlignment);
        if (job.req.op == Op::kWrite) {
          std::memcpy(p.mem, user, static_cast<std::size_t>(p.len));
          std::memset(p.mem + p.len, 0, static_cast<std::size_t>(p.io_len - p.len));
        }
      } else {
        p.mem = user;
        p.io_len = p.len;
      }
      const int injected = testing::fault(job.req.op == Op::kRead ? testing::FaultSite::kRead : testing::FaultSite::kWrite,
                                          job.req.file->path(), job.req.offset + p.rel);
      if (injected != 0) {
        fail(job, std::string(op_name(job.req.op)) + " of " + std::to_string(p.len) + " bytes in " +
                      where(job, p.rel) + " failed: " + errno_text(injected),
             io_error_hint(injected));
        free_slots.push_back(slot);
        continue;
      }
      if (job.req.op == Op::kWrite && job.req.page_crc) {
        // Recorded right after submission, before this worker reaps the piece:
        // the CRCs are in place before the request can be reported done.
        crc_tasks.push_back(CrcTask{&job, user, p.rel, p.len, false, {}, {}});
      }
      ++job.in_flight;
      if (in_flight++ == 0) busy_since = Clock::now();
      prep(slot);
    }
  }

  // Handles one completion. Called with `mu` held.
  void complete(int slot, int res) {
    Piece& p = pieces[slot];
    Job& job = *p.job;
    const bool read = job.req.op == Op::kRead;
    if (res == -EAGAIN || res == -EINTR) {
      if (++p.retries <= kMaxRetries) {
        prep(slot);
        return;
      }
    }
    bool finished = false;
    if (res < 0) {
      const int err = -res;
      fail(job, std::string(op_name(job.req.op)) + " of " + std::to_string(p.len) + " bytes in " +
                    where(job, p.rel + p.progress) + " failed: " + errno_text(err),
           io_error_hint(err));
      finished = true;
    } else {
      p.progress += res;
      if (read && p.progress >= (job.req.page_crc ? p.io_len : p.len)) {
        // Without checksums the padding of an odd tail may lie past the end
        // of the file; with them the whole last page is verified, so it must be there.
        finished = true;
      } else if (!read && p.progress >= p.io_len) {
        finished = true;
      } else if (res == 0 || (read && job.req.file->direct() && p.progress % kDirectAlignment != 0)) {
        // Nothing more, or (O_DIRECT) a partial block: the file ended there.
        if (read) {
          fail(job,
               "short read from " + where(job, p.rel) + ": the file ends after " + std::to_string(p.progress) +
                   " of the " + std::to_string(p.len) + " bytes asked for (request of " +
                   std::to_string(job.req.bytes) + " bytes at offset " + std::to_string(job.req.offset) + ")",
               "the file is shorter than what was written to it: it was truncated or replaced, or the "
               "offset/size do not match what was stored");
        } else {
          fail(job,
               "write to " + where(job, p.rel) + " made no progress after " + std::to_string(p.progress) + " of " +
                   std::to_string(p.io_len) + " bytes",
               io_error_hint(ENOSPC));
        }
        finished = true;
      } else {
        prep(slot);  // short transfer: continue with the rest (each step makes progress)
        return;
      }
    }
    if (finished && job.error.empty()) {
      char* user = static_cast<char*>(job.req.data) + p.rel;
      if (read && p.bounced) std::memcpy(user, p.mem, static_cast<std::size_t>(p.len));
      if (read && job.req.page_crc) {
        CrcTask t{&job, user, p.rel, p.len, true, {}, {}};
        if (p.io_len > p.len) t.pad.assign(p.mem + p.len, static_cast<std::size_t>(p.io_len - p.len));
        crc_tasks.push_back(std::move(t));
        ++job.checks;  // the job is not done until the check is
      }
      if (job.error.empty()) {
        if (read)
          counters.bytes_read += p.len;
        else
          counters.bytes_written += p.len;
      }
    }
    ++counters.operations;
    --job.in_flight;
    if (--in_flight == 0) counters.busy_seconds += std::chrono::duration<double>(Clock::now() - busy_since).count();
    p.job = nullptr;
    free_slots.push_back(slot);
    finish_if_done(job);
  }

  // Computes the queued checksums with `mu` released, then records or checks them.
  void run_crc_tasks(std::unique_lock<std::mutex>& lock) {
    std::vector<CrcTask> tasks;
    tasks.swap(crc_tasks);
    lock.unlock();
    for (CrcTask& t : tasks) page_crcs(t);
    lock.lock();
    for (const CrcTask& t : tasks) {
      Job& job = *t.job;
      std::uint32_t* table = job.req.page_crc + t.rel / kDirectAlignment;
      if (!t.verify) {
        std::copy(t.crcs.begin(), t.crcs.end(), table);
        continue;
      }
      for (std::size_t i = 0; i < t.crcs.size(); ++i) {
        if (t.crcs[i] == table[i]) continue;
        const std::int64_t at = t.rel + static_cast<std::int64_t>(i) * kDirectAlignment;
        fail(job,
             "checksum mismatch reading " + std::to_string(std::min(kDirectAlignment, t.len - (at - t.rel))) +
                 " bytes from " + where(job, at) + ": crc32c of the 4096-byte page is " + hex32(t.crcs[i]) +
                 ", written as " + hex32(table[i]),
             "the swap file changed on disk after this run wrote it (a failing drive, or another process "
             "wrote to it): the run cannot continue; resume from the last checkpoint, and check `dmesg` and "
             "the drive's health (smartctl) or move the offload path to another disk");
        break;
      }
      --job.checks;
      finish_if_done(job);
    }
  }

  // Without io_uring: the prepared pieces as plain pread/pwrite, one at a time.
  void run_sync(std::unique_lock<std::mutex>& lock) {
    std::vector<int> slots;
    slots.swap(sync_ready);
    std::vector<int> results(slots.size());
    lock.unlock();
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const Piece& p = pieces[static_cast<std::size_t>(slots[k])];
      const Request& r = p.job->req;
      const off_t off = static_cast<off_t>(r.offset + p.rel + p.progress);
      const std::size_t n = static_cast<std::size_t>(p.io_len - p.progress);
      const ssize_t got = r.op == Op::kRead ? ::pread(r.file->fd(), p.mem + p.progress, n, off)
                                            : ::pwrite(r.file->fd(), p.mem + p.progress, n, off);
      results[k] = got < 0 ? -errno : static_cast<int>(got);
    }
    lock.lock();
    for (std::size_t k = 0; k < slots.size(); ++k) complete(slots[k], results[k]);
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      issue_locked();
      if (!crc_tasks.empty()) {
        submit_pending();  // the device starts on the new pieces while we checksum
        run_crc_tasks(lock);
        continue;
      }
      if (in_flight == 0) {
        if (stop && queue.empty()) return;
        work_cv.wait(lock, [&] { return has_work_locked(); });
        continue;
      }
      if (!ring_ok) {
        run_sync(lock);
        continue;
      }
      lock.unlock();
      io_uring_cqe* cqe = nullptr;
      int rc = unsubmitted > 0 ? io_uring_submit_and_wait(&ring, 1) : io_uring_wait_cqe(&ring, &cqe);
      if (rc >= 0 && unsubmitted > 0) unsubmitted -= std::min(unsubmitted, rc);
      lock.lock();
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
        // Not expected on a working ring; completions already queued still
        // arrive. Say so once and back off instead of spinning.
        log::warn_once("io.enter", "io_uring_enter failed: " + errno_text(-rc) + "; retrying");
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        lock.lock();
      }
      unsigned head = 0, seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        complete(static_cast<int>(io_uring_cqe_get_data64(cqe)), cqe->res);
        ++seen;
      }
      io_uring_cq_advance(&ring, seen);
    }
  }
};

UringEngine::UringEngine(EngineOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  if (options.block_size <= 0 || options.block_size % kDirectAlignment != 0) {
    throw UsageError("aio.block_size " + std::to_string(options.block_size) + " is not a positive multiple of 4096",
                     "use a power of two between 4096 and 16777216; 1048576 (1 MiB) suits most NVMe drives");
  }
  if (options.queue_depth < 1 || options.queue_depth > 1024) {
    throw UsageError("aio.queue_depth " + std::to_string(options.queue_depth) + " is outside 1..1024",
                     "8 to 32 keeps an NVMe drive busy");
  }
  d.opt = options;
  unsigned entries = 1;
  while (entries < static_cast<unsigned>(options.queue_depth)) entries <<= 1;
  io_uring_params params{};
  params.flags = IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init_params(entries, &d.ring, &params);
  if (rc == -EINVAL) {  // kernels before 5.19 do not know COOP_TASKRUN
    params = io_uring_params{};
    rc = io_uring_queue_init_params(entries, &d.ring, &params);
  }
  if (const int injected = testing::fault(testing::FaultSite::kRingSetup, "", 0)) {
    if (rc == 0) io_uring_queue_exit(&d.ring);
    rc = -injected;
  }
  d.ring_ok = rc == 0;
  if (!d.ring_ok) {
    log::warn_once("io.nouring",
                   "io_uring is not available (" + errno_text(-rc) +
                       "): NVMe I/O falls back to pread/pwrite on one thread, one request at a time, which "
                       "reaches a fraction of an NVMe drive's bandwidth. Enable io_uring (Linux >= 5.10, sysctl "
                       "kernel.io_uring_disabled=0; in containers: docker run --security-opt seccomp=unconfined).");
  }
  d.fixed_table = d.ring_ok && io_uring_register_buffers_sparse(&d.ring, kFixedBufferSlots) == 0;
  if (d.fixed_table) d.fixed.resize(kFixedBufferSlots);
  d.pieces.resize(static_cast<std::size_t>(options.queue_depth));
  d.bounce.resize(static_cast<std::size_t>(options.queue_depth));
  for (int i = options.queue_depth - 1; i >= 0; --i) d.free_slots.push_back(i);
  d.worker = std::thread([&d] { d.run(); });
}

UringEngine::~UringEngine() {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    d.stop = true;
  }
  d.work_cv.notify_all();
  d.worker.join();
  std::size_t failed = 0;
  for (const auto& [id, job] : d.jobs) failed += job->error.empty() ? 0 : 1;
  if (failed) log::warn(std::to_string(failed) + " I/O request(s) failed and were never waited for");
  if (d.ring_ok) io_uring_queue_exit(&d.ring);
}

Ticket UringEngine::submit(const Request& r) {
  const std::string what = std::string(op_name(r.op)) + " request";
  if (!r.file || !r.file->is_open()) throw Error(what + " without an open file", "open the file first");
  if (!r.data || r.bytes <= 0)
    throw Error(what + " for '" + r.file->path() + "' has no buffer or a size of " + std::to_string(r.bytes) +
                    " bytes",
                "pass a buffer and a positive byte count");
  if (r.offset < 0) throw Error(what + " for '" + r.file->path() + "' at negative offset " + std::to_string(r.offset));
  if (r.file->direct() && r.offset % kDirectAlignment != 0)
    throw Error(what + " at offset " + std::to_string(r.offset) + " of O_DIRECT file '" + r.file->path() +
                    "' is not a multiple of 4096",
                "place tensors in swap files at offsets rounded up to 4096 (SwapFile does this)");
  if (r.page_crc && r.offset % kDirectAlignment != 0)
    throw Error(what + " at offset " + std::to_string(r.offset) + " of '" + r.file->path() +
                    "' carries page checksums but does not start on a 4096-byte page",
                "checksummed requests start at multiples of 4096 (SwapFile does this)");
  Impl& d = *impl_;
  auto job = std::make_unique<Job>();
  job->req = r;
  std::lock_guard<std::mutex> lock(d.mu);
  const char* begin = static_cast<const char*>(r.data);
  for (std::size_t i = 0; i < d.fixed.size(); ++i) {
    const FixedBuffer& f = d.fixed[i];
    if (f.base && begin >= f.base && begin + r.bytes <= f.base + f.bytes) {
      job->fixed = static_cast<int>(i);
      break;
    }
  }
  job->id = d.next_ticket++;
  Job* raw = job.get();
  d.jobs.emplace(raw->id, std::move(job));
  d.queue.push_back(raw);
  d.work_cv.notify_one();
  return raw->id;
}

Ticket UringEngine::read(const File& file, std::int64_t offset, void* data, std::int64_t bytes) {
  return submit(Request{Op::kRead, &file, offset, data, bytes});
}

Ticket UringEngine::write(const File& file, std::int64_t offset, const void* data, std::int64_t bytes) {
  return submit(Request{Op::kWrite, &file, offset, const_cast<void*>(data), bytes});
}

namespace {
void report(std::unique_ptr<Job> job) {
  if (!job->error.empty()) throw Error(job->error, job->hint);
}
}  // namespace

void UringEngine::wait(Ticket ticket) {
  Impl& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mu);
  auto it = d.jobs.find(ticket);
  for (;;) {
    if (it == d.jobs.end())
      throw Error("I/O ticket " + std::to_string(ticket) + " is unknown or was already waited for");
    if (it->second->done) break;
    d.done_cv.wait(lock);
    it = d.jobs.find(ticket);  // another thread's wait_all() may have taken it meanwhile
  }
  std::unique_ptr<Job> owned = std::move(it->second);
  d.jobs.erase(it);
  lock.unlock();
  report(std::move(owned));
}

bool UringEngine::poll(Ticket ticket) {
  Impl& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mu);
  auto it = d.jobs.find(ticket);
  if (it == d.jobs.end())
    throw Error("I/O ticket " + std::to_string(ticket) + " is unknown or was already waited for");
  if (!it->second->done) return false;
  std::unique_ptr<Job> owned = std::move(it->second);
  d.jobs.erase(it);
  lock.unlock();
  report(std::move(owned));
  return true;
}

void UringEngine::wait_all() {
  Impl& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mu);
  d.done_cv.wait(lock, [&] {
    return std::all_of(d.jobs.begin(), d.jobs.end(), [](const auto& kv) { return kv.second->done; });
  });
  std::string first, hint;
  std::size_t failures = 0;
  for (auto& [id, job] : d.jobs) {
    if (job->error.empty()) continue;
    if (failures++ == 0) {
      first = job->error;
      hint = job->hint;
    }
  }
  d.jobs.clear();
  if (failures == 1) throw Error(first, hint);
  if (failures > 1) throw Error(first + " (and " + std::to_string(failures - 1) + " more failed requests)", hint);
}

bool UringEngine::register_buffer(const void* data, std::int64_t bytes) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mu);
  if (!d.fixed_table || !data || bytes <= 0) return false;
  for (std::size_t i = 0; i < d.fixed.size(); ++i) {
    if (d.fixed[i].base) continue;
    iovec iov{const_cast<void*>(data), static_cast<std::size_t>(bytes)};
    __u64 tag = 0;
    const int rc = io_uring_register_buffers_update_tag(&d.ring, static_cast<unsigned>(i), &iov, &tag, 1);
    if (rc < 0) {
      log::debug("io_uring buffer registration refused: " + errno_text(-rc));
      return false;
    }
    d.fixed[i] = FixedBuffer{static_cast<const char*>(data), bytes};
    return true;
  }
  return false;
}

void UringEngine::unregister_buffer(const void* data) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mu);
  for (std::size_t i = 0; i < d.fixed.size(); ++i) {
    if (d.fixed[i].base != data) continue;
    for (const auto& [id, job] : d.jobs)
      if (job->fixed == static_cast<int>(i) && !job->done)
        throw Error("cannot unregister a buffer while I/O request " + std::to_string(id) + " uses it",
                    "wait for the request first");
    iovec iov{nullptr, 0};
    __u64 tag = 0;
    io_uring_register_buffers_update_tag(&d.ring, static_cast<unsigned>(i), &iov, &tag, 1);
    d.fixed[i] = FixedBuffer{};
    return;
  }
}

IoCounters UringEngine::counters() const {
  const Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mu);
  IoCounters c = d.counters;
  if (d.in_flight > 0) c.busy_seconds += std::chrono::duration<double>(Clock::now() - d.busy_since).count();
  return c;
}

const EngineOptions& UringEngine::options() const { return impl_->opt; }

bool UringEngine::uses_io_uring() const { return impl_->ring_ok; }

}  // namespace zinf::io
