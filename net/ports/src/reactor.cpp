// reactor: the io_context and its thread pool (reactor.hpp).
#include "troupe/ports/reactor.hpp"

#include <signal.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>
#include <thread>
#include <vector>

namespace troupe::ports {

struct reactor::impl {
  boost::asio::io_context context;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work{context.get_executor()};
  std::vector<std::thread> pool;
};

reactor::reactor(std::size_t threads) : impl_(std::make_unique<impl>()) {
  threads = std::max<std::size_t>(threads, 1);
  impl_->pool.reserve(threads);
  // The reactor threads write to pipes whose reader may be gone: with SIGPIPE
  // blocked in them (they inherit this mask), such a write fails with EPIPE
  // instead of killing the process, and nothing changes for other threads.
  sigset_t pipe_signal;
  sigset_t previous;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous);
  for (std::size_t i = 0; i < threads; ++i) impl_->pool.emplace_back([this] { impl_->context.run(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

reactor::~reactor() {
  impl_->work.reset();
  impl_->context.stop();
  for (auto& t : impl_->pool) t.join();
}

boost::asio::io_context& reactor::context() noexcept { return impl_->context; }
std::size_t reactor::threads() const noexcept { return impl_->pool.size(); }

}  // namespace troupe::ports
