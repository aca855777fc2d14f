// The bulk path of `token verify -`: input cut into pieces of whole lines, verified by one worker a
// core, written in input order.
#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fleetkey::fleet {

namespace {

// A run of whole input lines and, once verified, their output.
struct Piece
{
  std::shared_ptr<const std::string> chunk; // the input buffer `lines` points into
  std::string_view lines;
  std::string out;
  uint64_t seq = 0; // input order
  Exit first_invalid = Exit::ok;
  uint64_t total = 0;
  uint64_t invalid = 0;
};

void run_piece(TokenVerifier& verifier, token::Verification& v, Piece& p)
{
  const std::string_view lines = p.lines;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t nl = lines.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = lines.size();
    }
    std::string_view line = lines.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      continue; // blank lines are not tokens
    }
    const auto r = verifier.verify(line, v);
    ++p.total;
    if (r != token::Reason::valid) {
      ++p.invalid;
      if (p.first_invalid == Exit::ok) {
        p.first_invalid = token::reason_exit(r);
      }
    }
    token::append_verdict_json(p.out, r, v);
    p.out += '\n';
  }
}

// Input buffers of `size` bytes, reused once every piece cut from one is verified: a new buffer
// would cost a zero fill of 4 MiB and, once the allocator returns it to the system, a page fault
// a page. The pool must outlive every buffer it handed out.
class ChunkPool
{
public:
  explicit ChunkPool(size_t size)
      : m_size(size)
  {
  }

  std::shared_ptr<std::string> get()
  {
    std::unique_ptr<std::string> chunk;
    {
      std::lock_guard lock(m_mutex);
      if (!m_free.empty()) {
        chunk = std::move(m_free.back());
        m_free.pop_back();
      }
    }
    if (!chunk) {
      chunk = std::make_unique<std::string>(m_size, '\0');
    }
    return {chunk.release(), [this](std::string* c) {
              std::lock_guard lock(m_mutex);
              m_free.emplace_back(c);
            }};
  }

private:
  size_t m_size;
  std::mutex m_mutex;
  std::vector<std::unique_ptr<std::string>> m_free;
};

// The bulk path as a pipeline: the calling thread reads and cuts the input into pieces, one
// worker per core verifies them, and whichever worker completes the next piece in input order
// writes it (and any completed pieces after it). Reading and writing overlap the verifying, and
// no worker waits for another to finish.
class Pipeline
{
public:
  Pipeline(TokenVerifier& verifier, std::FILE* out, size_t workers)
      : m_verifier(verifier)
      , m_out(out)
      , m_pool(workers)
  {
    for (size_t i = 0; i < workers; ++i) {
      m_pool.enqueue([this] { work(); });
    }
  }

  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  ~Pipeline()
  {
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
    }
    m_work.notify_all();
    m_pool.shut_down();
  }

  // Queues a piece: lines to verify, or (`verified`) one whose output and counts are already
  // set. Blocks while enough work is queued; throws the workers' error, if any.
  void push(std::unique_ptr<Piece> p, bool verified = false)
  {
    std::unique_lock lock(m_mutex);
    m_space.wait(lock, [this] { return m_in_flight < k_max_in_flight || m_error; });
    rethrow();
    p->seq = m_next_seq++;
    ++m_in_flight;
    if (verified) {
      lock.unlock();
      deliver(std::move(p));
      return;
    }
    m_queue.push_back(std::move(p));
    lock.unlock();
    m_work.notify_one();
  }

  // A piece to fill: one already written, reused (its output keeps its capacity: no growing by
  // copies, no page faults of fresh memory), or a new one.
  std::unique_ptr<Piece> piece()
  {
    std::lock_guard lock(m_mutex);
    if (m_spare.empty()) {
      return std::make_unique<Piece>();
    }
    auto p = std::move(m_spare.back());
    m_spare.pop_back();
    return p;
  }

  // Waits until every piece is written.
  StreamResult finish()
  {
    std::unique_lock lock(m_mutex);
    m_space.wait(lock, [this] { return m_in_flight == 0 || m_error; });
    rethrow();
    return m_result;
  }

private:
  static constexpr size_t k_max_in_flight = 96; // ~6 MiB of input: two chunks

  void rethrow()
  {
    if (m_error) {
      std::rethrow_exception(m_error);
    }
  }

  void work()
  {
    token::Verification v;
    for (;;) {
      std::unique_ptr<Piece> p;
      {
        std::unique_lock lock(m_mutex);
        m_work.wait(lock, [this] { return !m_queue.empty() || m_closed; });
        if (m_queue.empty() || m_error) {
          return;
        }
        p = std::move(m_queue.front());
        m_queue.pop_front();
      }
      try {
        run_piece(m_verifier, v, *p);
        p->chunk.reset();
        deliver(std::move(p));
      } catch (...) {
        std::lock_guard lock(m_mutex);
        if (!m_error) {
          m_error = std::current_exception();
        }
        m_space.notify_all();
      }
    }
  }

  // Hands over a completed piece; the thread that completes the next one in order writes.
  void deliver(std::unique_ptr<Piece> p)
  {
    std::unique_lock lock(m_mutex);
    const uint64_t seq = p->seq;
    m_ready.emplace(seq, std::move(p));
    if (m_writing) {
      return;
    }
    m_writing = true;
    for (auto it = m_ready.find(m_next_write); it != m_ready.end(); it = m_ready.find(m_next_write)) {
      std::unique_ptr<Piece> next = std::move(it->second);
      m_ready.erase(it);
      lock.unlock();
      if (!next->out.empty() && std::fwrite(next->out.data(), 1, next->out.size(), m_out) != next->out.size()) {
        const int err = errno;
        lock.lock();
        m_writing = false;
        // Nothing after a lost piece may be written: every thread stops, and push() and finish() throw.
        if (!m_error) {
          m_error = std::make_exception_ptr(Error(Exit::failure, "cannot write to stdout: {}", std::strerror(err)));
        }
        m_space.notify_all();
        std::rethrow_exception(m_error);
      }
      lock.lock();
      m_result.total += next->total;
      m_result.invalid += next->invalid;
      if (m_result.first_invalid == Exit::ok) {
        m_result.first_invalid = next->first_invalid;
      }
      ++m_next_write;
      --m_in_flight;
      next->out.clear();
      next->chunk.reset();
      next->lines = {};
      next->first_invalid = Exit::ok;
      next->total = next->invalid = 0;
      m_spare.push_back(std::move(next));
      m_space.notify_all();
    }
    m_writing = false;
  }

  TokenVerifier& m_verifier;
  std::FILE* m_out;
  std::mutex m_mutex;
  std::condition_variable m_work;  // pieces queued, or closing
  std::condition_variable m_space; // pieces written, or an error
  std::deque<std::unique_ptr<Piece>> m_queue;
  std::map<uint64_t, std::unique_ptr<Piece>> m_ready; // verified, waiting for their turn
  std::vector<std::unique_ptr<Piece>> m_spare;        // written, for piece() to reuse
  uint64_t m_next_seq = 0;
  uint64_t m_next_write = 0;
  size_t m_in_flight = 0; // queued, being verified or waiting to be written
  bool m_writing = false;
  bool m_closed = false;
  std::exception_ptr m_error;
  StreamResult m_result;
  util::ThreadPool m_pool; // one long-running work() a worker
};

} // namespace

StreamResult verify_stream(Fleet& fleet, int fd, std::FILE* out, const VerifyOptions& options)
{
  TokenVerifier verifier(fleet, options, Preload::all);
  const size_t workers = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  constexpr size_t k_chunk = size_t{4} << 20; // read size; also the longest line looked at
  constexpr size_t k_piece = size_t{64} << 10;
  token::Verification oversized;
  oversized.detail = fmt::format("token is longer than {} bytes", token::k_max_token_size);
  ChunkPool chunks(k_chunk); // before the pipeline, whose pieces hold its buffers
  Pipeline pipeline(verifier, out, workers);
  std::string carry; // the start of a line that the previous chunk cut
  bool eof = false;
  bool discarding = false; // inside a line longer than a chunk
  while (!eof) {
    auto chunk = chunks.get();
    size_t have = carry.size();
    std::memcpy(chunk->data(), carry.data(), carry.size());
    carry.clear();
    while (!eof && have < chunk->size()) {
      const ssize_t n = ::read(fd, chunk->data() + have, chunk->size() - have);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        throw Error(Exit::failure, "cannot read stdin: {}", std::strerror(errno));
      }
      eof = n == 0;
      have += static_cast<size_t>(std::max<ssize_t>(n, 0));
    }
    std::string_view data(chunk->data(), have);
    size_t end = data.rfind('\n');
    if (end == std::string_view::npos && !eof) {
      // A full chunk without a newline: one line too long to be a token.
      if (!discarding) {
        auto p = pipeline.piece();
        token::append_verdict_json(p->out, token::Reason::malformed, oversized);
        p->out += '\n';
        p->total = p->invalid = 1;
        p->first_invalid = Exit::token_malformed;
        pipeline.push(std::move(p), true);
      }
      discarding = true;
      continue;
    }
    end = eof ? have : end + 1; // at EOF the last line may lack a newline
    carry.assign(data.substr(end));
    std::string_view lines = data.substr(0, end);
    if (discarding) {
      const size_t nl = lines.find('\n');
      lines.remove_prefix(nl == std::string_view::npos ? lines.size() : nl + 1);
      discarding = false;
    }
    while (!lines.empty()) {
      size_t cut = lines.size();
      if (cut > k_piece) {
        const size_t nl = lines.find('\n', k_piece - 1);
        cut = nl == std::string_view::npos ? lines.size() : nl + 1;
      }
      auto p = pipeline.piece();
      p->chunk = chunk;
      p->lines = lines.substr(0, cut);
      pipeline.push(std::move(p));
      lines.remove_prefix(cut);
    }
  }
  const StreamResult result = pipeline.finish();
  if (std::fflush(out) != 0) {
    throw Error(Exit::failure, "cannot write to stdout: {}", std::strerror(errno));
  }
  return result;
}

} // namespace fleetkey::fleet
