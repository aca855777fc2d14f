#pragma once
// A small worker pool in the shape of ccache's util::ThreadPool: a fixed number of threads that
// run queued tasks in order of submission, an optional bound on the queue (enqueue blocks while
// it is full), and shut_down(), which runs what is queued and joins. Knows nothing of fleetkey.
//
// A task must not let an exception escape (as with std::thread, that ends the process): the
// users hand their errors back to the submitting thread themselves.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace fleetkey::util {

class ThreadPool
{
public:
  explicit ThreadPool(size_t threads, size_t max_queued = std::numeric_limits<size_t>::max());
  ~ThreadPool(); // shut_down()

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void enqueue(std::function<void()> task);
  // Runs every queued task, then joins the threads. Idempotent.
  void shut_down() noexcept;

private:
  void worker();

  std::vector<std::thread> m_threads;
  std::deque<std::function<void()>> m_queue;
  size_t m_max_queued;
  std::mutex m_mutex;
  std::condition_variable m_queued;   // a task was queued, or shutting down
  std::condition_variable m_dequeued; // room in the queue
  bool m_shutting_down = false;
};

} // namespace fleetkey::util
