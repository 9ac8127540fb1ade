// The method table (see methods.hpp).
#include "troupe/gateway/methods.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <map>

namespace troupe::gateway {

namespace json = boost::json;

std::string_view to_string(failure f) noexcept {
  switch (f) {
    case failure::method_not_found:
      return "method not found";
    case failure::invalid_params:
      return "invalid parameters";
    case failure::overloaded:
      return "overloaded";
    case failure::timeout:
      return "timeout";
    case failure::actor_down:
      return "actor down";
    case failure::internal:
      return "internal error";
  }
  return "unknown failure";
}

call_failure failure_of(const troupe::error& e) {
  switch (e.code()) {
    case errc::timeout:
      return {failure::timeout, e.to_string()};
    case errc::actor_down:
    case errc::no_such_actor:
    case errc::system_stopped:
    case errc::no_such_node:
    case errc::connection_lost:
      return {failure::actor_down, e.to_string()};
    default:
      return {failure::internal, e.to_string()};
  }
}

namespace detail {
std::optional<std::string> normalize_params(json::value& params, const std::vector<std::string>& names) {
  if (params.is_null()) {
    if (!names.empty()) return "parameters are missing: expected " + std::to_string(names.size());
    params = json::object();
    return std::nullopt;
  }
  if (params.is_object()) return std::nullopt;  // by name: the conversion checks the keys
  if (!params.is_array()) return std::string("parameters must be an object (by name) or an array (by position)");
  json::array& by_position = params.as_array();
  if (by_position.size() != names.size()) {
    return "expected " + std::to_string(names.size()) + " parameters, got " + std::to_string(by_position.size());
  }
  json::object by_name;
  by_name.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) by_name.emplace(names[i], std::move(by_position[i]));
  params = std::move(by_name);
  return std::nullopt;
}
}  // namespace detail

struct methods::state {
  state(troupe::system& system, settings s) : sys(&system), config(s) {}

  struct entry {
    method_info info;
    invoker invoke;         // an ask or a tell
    stream_invoker stream;  // a stream (then invoke is empty)
  };
  troupe::system* sys;
  settings config;
  std::map<std::string, entry, std::less<>> table;
  // Calls in flight (for the bound). Relaxed: a count, it orders no other memory.
  mutable std::atomic<std::size_t> in_flight{0};
};

methods::methods(troupe::system& sys, settings s) : state_(std::make_shared<state>(sys, s)) {}
methods::~methods() = default;

void methods::add(method_info info, invoker invoke) {
  std::string name = info.name;
  state_->table.insert_or_assign(std::move(name), state::entry{std::move(info), std::move(invoke), {}});
}

void methods::add_stream(method_info info, stream_invoker invoke) {
  std::string name = info.name;
  state_->table.insert_or_assign(std::move(name), state::entry{std::move(info), {}, std::move(invoke)});
}

troupe::system& methods::actor_system() const noexcept { return *state_->sys; }

void methods::call(std::string_view method, json::value params, std::optional<std::chrono::nanoseconds> timeout,
                   completion done) const {
  const auto found = state_->table.find(method);
  if (found == state_->table.end()) {
    done(call_failure{failure::method_not_found, "no method named '" + std::string(method) + "'"});
    return;
  }
  if (std::optional<std::string> bad = detail::normalize_params(params, found->second.info.params)) {
    done(call_failure{failure::invalid_params, std::move(*bad)});
    return;
  }
  if (state_->in_flight.fetch_add(1, std::memory_order_relaxed) >= state_->config.max_in_flight) {
    state_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    done(call_failure{failure::overloaded,
                      "more than " + std::to_string(state_->config.max_in_flight) + " calls in flight"});
    return;
  }
  // The count drops when the call completes, however it completes. Every path
  // runs its completion (an ask whose request is dropped completes as
  // request_dropped); should one still destroy it unrun (an invoker that threw
  // out of memory), the call completes as internal when the last copy goes.
  struct once {
    std::shared_ptr<state> s;
    completion done;
    once(std::shared_ptr<state> st, completion d) : s(std::move(st)), done(std::move(d)) {}
    once(const once&) = delete;
    once& operator=(const once&) = delete;
    ~once() {
      if (!done) return;
      try {
        finish(call_failure{failure::internal, "the call was dropped unanswered"});
      } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; the caller's completion did
      }
    }
    void finish(call_result r) {
      completion d = std::move(done);
      done = nullptr;
      s->in_flight.fetch_sub(1, std::memory_order_relaxed);
      d(std::move(r));
    }
  };
  completion counted = [o = std::make_shared<once>(state_, std::move(done))](call_result r) {
    if (o->done) o->finish(std::move(r));
  };
  const std::chrono::nanoseconds ask_timeout = timeout_of(timeout);
  if (found->second.stream) {
    // A protocol without streams: the whole stream as one array.
    auto items = std::make_shared<json::array>();
    const std::size_t most = state_->config.max_stream_items;
    stream_callbacks collect{[items, most](json::value v) {
                               if (items->size() >= most) return false;
                               items->push_back(std::move(v));
                               return true;
                             },
                             [items, counted](std::optional<call_failure> f) {
                               if (f) {
                                 counted(std::move(*f));
                               } else {
                                 counted(json::value(std::move(*items)));
                               }
                             }};
    (void)found->second.stream(*this, std::move(params), ask_timeout, std::move(collect));
    return;
  }
  found->second.invoke(std::move(params), ask_timeout, std::move(counted));
}

std::chrono::nanoseconds methods::timeout_of(std::optional<std::chrono::nanoseconds> timeout) const noexcept {
  std::chrono::nanoseconds t = state_->config.ask_timeout;
  if (timeout && *timeout < t) t = std::max(*timeout, std::chrono::nanoseconds{0});
  return t;
}

std::function<void()> methods::call_stream(std::string_view method, json::value params,
                                           std::optional<std::chrono::nanoseconds> timeout, stream_callbacks cb) const {
  const auto found = state_->table.find(method);
  if (found == state_->table.end() || !found->second.stream) {
    cb.end(call_failure{failure::method_not_found, "no stream method named '" + std::string(method) + "'"});
    return [] {};
  }
  if (std::optional<std::string> bad = detail::normalize_params(params, found->second.info.params)) {
    cb.end(call_failure{failure::invalid_params, std::move(*bad)});
    return [] {};
  }
  if (state_->in_flight.fetch_add(1, std::memory_order_relaxed) >= state_->config.max_in_flight) {
    state_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    cb.end(call_failure{failure::overloaded,
                        "more than " + std::to_string(state_->config.max_in_flight) + " calls in flight"});
    return [] {};
  }
  // The relay runs `end` exactly once (also when cancelled or stopped), so the
  // count drops there.
  cb.end = [s = state_, end = std::move(cb.end)](std::optional<call_failure> f) {
    s->in_flight.fetch_sub(1, std::memory_order_relaxed);
    end(std::move(f));
  };
  return found->second.stream(*this, std::move(params), timeout_of(timeout), std::move(cb));
}

std::vector<method_info> methods::list() const {
  std::vector<method_info> out;
  out.reserve(state_->table.size());
  for (const auto& [name, e] : state_->table) out.push_back(e.info);
  return out;
}

const method_info* methods::find(std::string_view method) const {
  const auto found = state_->table.find(method);
  return found == state_->table.end() ? nullptr : &found->second.info;
}

const settings& methods::config() const noexcept { return state_->config; }

std::size_t methods::in_flight() const noexcept { return state_->in_flight.load(std::memory_order_relaxed); }

}  // namespace troupe::gateway
