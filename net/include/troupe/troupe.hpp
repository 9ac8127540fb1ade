// troupe: typed actors for C++20. This umbrella header is all an application needs.
//
//   #include <troupe/troupe.hpp>
//   troupe::system sys;
//   auto b = sys.spawn<bank_actor>();
#pragma once

#include "troupe/net/cluster.hpp"
#include "troupe/net/deploy.hpp"
#include "troupe/net/node.hpp"
#include "troupe/net/node_child.hpp"
#include "troupe/net/node_config.hpp"
#include "troupe/net/reliable.hpp"
#include "troupe/net/remote_child.hpp"
#include "troupe/net/topic.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/actor_addr.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/response.hpp"
#include "troupe/runtime/scoped.hpp"
#include "troupe/runtime/serialization.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"
#include "troupe/runtime/task.hpp"
#include "troupe/runtime/timer.hpp"
