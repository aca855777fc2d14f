#include <fleetkey/util/thread_pool.hpp>

#include <utility>

namespace fleetkey::util {

ThreadPool::ThreadPool(size_t threads, size_t max_queued)
    : m_max_queued(max_queued == 0 ? 1 : max_queued)
{
  m_threads.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    m_threads.emplace_back([this] { worker(); });
  }
}

ThreadPool::~ThreadPool()
{
  shut_down();
}

void ThreadPool::enqueue(std::function<void()> task)
{
  {
    std::unique_lock lock(m_mutex);
    m_dequeued.wait(lock, [this] { return m_queue.size() < m_max_queued || m_shutting_down; });
    m_queue.push_back(std::move(task));
  }
  m_queued.notify_one();
}

void ThreadPool::shut_down() noexcept
{
  {
    std::lock_guard lock(m_mutex);
    if (m_shutting_down && m_threads.empty()) {
      return;
    }
    m_shutting_down = true;
  }
  m_queued.notify_all();
  m_dequeued.notify_all();
  for (auto& t : m_threads) {
    if (t.joinable()) {
      t.join();
    }
  }
  m_threads.clear();
}

void ThreadPool::worker()
{
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(m_mutex);
      m_queued.wait(lock, [this] { return !m_queue.empty() || m_shutting_down; });
      if (m_queue.empty()) {
        return; // shutting down, and nothing left to run
      }
      task = std::move(m_queue.front());
      m_queue.pop_front();
    }
    m_dequeued.notify_one();
    task();
  }
}

} // namespace fleetkey::util
