// gate: lets a test decide when a blocked handler (or constructor) may return,
// and know that it got there. Threaded tests only.
//
//   troupe_test::open_on_exit handler;        // opens the gate however the test ends
//   ASSERT_FALSE(a.tell(hold{handler.g}));    // the actor's handler calls g->wait()
//   ASSERT_EQ(handler.g->entered.get_future().wait_for(30s), std::future_status::ready);
//   ... the handler is blocked: test what happens meanwhile ...
//   handler.g->open();
//
// Thread safety: enter(), wait() and open() from any thread, each as often as
// needed (entered is set once, the gate opens once). The get_future() of
// `entered` belongs to the test's thread.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <mutex>

namespace troupe_test {

struct gate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::once_flag entered_once;
  std::once_flag opened;
  void enter() {
    std::call_once(entered_once, [this] { entered.set_value(); });
  }
  void wait() {
    enter();
    // Bounded so that a failed test cannot leave a thread blocked forever.
    (void)released.wait_for(std::chrono::seconds(60));
  }
  void open() {
    std::call_once(opened, [this] { release.set_value(); });
  }
};

// Opens the gate on every path out of a test, so that a blocked thread finishes.
struct open_on_exit {
  std::shared_ptr<gate> g = std::make_shared<gate>();
  open_on_exit() = default;
  open_on_exit(const open_on_exit&) = delete;
  open_on_exit& operator=(const open_on_exit&) = delete;
  ~open_on_exit() { g->open(); }
};

}  // namespace troupe_test
