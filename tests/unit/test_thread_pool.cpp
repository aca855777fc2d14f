// util/thread_pool.hpp: every task runs once, a bounded queue blocks, shut_down drains and joins.
#include <fleetkey/util/thread_pool.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>

using namespace fleetkey;

TEST_CASE("thread_pool: every queued task runs once before shut_down returns")
{
  for (const size_t threads : {size_t{1}, size_t{2}, size_t{4}}) {
    std::atomic<int> sum{0};
    util::ThreadPool pool(threads, 3);
    for (int i = 1; i <= 100; ++i) {
      pool.enqueue([&sum, i] { sum += i; });
    }
    pool.shut_down();
    CHECK(sum == 5050);
    pool.shut_down(); // idempotent
  }
}

TEST_CASE("thread_pool: long-running tasks, one a thread, all run at once")
{
  std::atomic<int> running{0};
  std::atomic<bool> release{false};
  util::ThreadPool pool(3);
  for (int i = 0; i < 3; ++i) {
    pool.enqueue([&] {
      ++running;
      while (!release) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  while (running < 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(running == 3);
  release = true;
}
