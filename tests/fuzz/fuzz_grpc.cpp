// Fuzz target: the gRPC gateway's decoders (net/gateway/src/grpc_codec.hpp),
// on what a hostile peer controls. The first byte picks a case
// (fuzz_grpc_cases.hpp); the rest is:
// - server_request: a request message as a gRPC client sent it to the gateway,
//   run the way grpc_server.cpp runs it: ParseFromString into the generated
//   request's prototype, message_to_json, the method table's call (parameter
//   conversion, an ask to a real actor, the reply to JSON), json_to_message into
//   the reply message, serialized; for a stream, each item the same way;
// - client_reply: a response as a gRPC server sent it to grpc_client (of the
//   gateway's schema, or of an outside .proto with every protobuf type):
//   ParseFromString into the reply's prototype, message_to_json, unwrapped;
// - proto_text: .proto text as grpc_client and grpc_settings::proto take it.
//
// Invariants:
// - a parsed message is an object with exactly its fields, and json_to_message
//   takes it back to a message with the same JSON;
// - the table accepts every request that parsed, except a value too wide for a
//   narrower C++ member (invalid parameters), and answers each call once (a
//   stream: at most 4 items, then one end without a failure);
// - the actor's reply always fits the reply message, and the reply's bytes parse
//   back to the same JSON; the echoing method answers with the request's JSON;
// - a .proto that parses names no import, and builds or is refused, no crash.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>

#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "fuzz_check.hpp"
#include "fuzz_grpc_cases.hpp"
#include "grpc_codec.hpp"
#include "troupe/gateway/stream.hpp"

namespace {

namespace json = boost::json;
namespace pb = google::protobuf;
namespace codec = troupe::gateway::grpc_codec;
namespace gw = troupe::gateway;
using troupe::fuzz::grpc_case;

// The same text for the same JSON (NaN included, which == would call unequal).
std::string text_of(const json::value& v) { return json::serialize(v); }

// message_to_json's shape, and json_to_message's round trip back to the same JSON.
json::object checked_json(const pb::Message& m) {
  json::object o = codec::message_to_json(m);
  TROUPE_FUZZ_CHECK(o.size() == static_cast<std::size_t>(m.GetDescriptor()->field_count()));
  const std::unique_ptr<pb::Message> again(m.New());
  TROUPE_FUZZ_CHECK(codec::json_to_message(o, again.get()).empty());
  TROUPE_FUZZ_CHECK(text_of(codec::message_to_json(*again)) == text_of(o));
  return o;
}

// grpc_server.cpp's complete() (and a stream item's callback): the actor's
// answer into the reply message, which always fits and parses back.
void check_reply(const grpc_case& c, json::value answer, const json::object* request_json) {
  const std::unique_ptr<pb::Message> reply(c.reply->New());
  if (c.wrapped_reply) {
    json::object o;
    o.emplace("value", std::move(answer));
    TROUPE_FUZZ_CHECK(codec::json_to_message(o, reply.get()).empty());
  } else if (!c.empty_reply) {
    TROUPE_FUZZ_CHECK(codec::json_to_message(answer, reply.get()).empty());
  } else {
    TROUPE_FUZZ_CHECK(answer.is_null());
  }
  const std::string sent = reply->SerializeAsString();
  const std::unique_ptr<pb::Message> back(c.reply->New());
  TROUPE_FUZZ_CHECK(back->ParseFromString(sent));
  const json::object reply_json = checked_json(*back);
  TROUPE_FUZZ_CHECK(text_of(reply_json) == text_of(codec::message_to_json(*reply)));
  if (request_json != nullptr) TROUPE_FUZZ_CHECK(text_of(reply_json) == text_of(*request_json));
}

// grpc_server.cpp's call::start_stream(): every item fits, the stream ends once, without a failure.
void server_stream(troupe::fuzz::grpc_world& world, const grpc_case& c, const json::object& params) {
  std::vector<json::value> items;
  int ends = 0;
  std::optional<gw::call_failure> failed;
  gw::stream_callbacks cb{[&](json::value v) {
                            items.push_back(std::move(v));
                            return true;
                          },
                          [&](std::optional<gw::call_failure> f) {
                            ++ends;
                            failed = std::move(f);
                          }};
  (void)world.table.call_stream(c.name, params, std::chrono::seconds(5), std::move(cb));
  world.system.run_until_idle();
  // The stream's deadline timer fires (after the end: nothing happens), so
  // that timers do not pile up on the virtual clock.
  world.system.advance_time(std::chrono::seconds(6));
  TROUPE_FUZZ_CHECK(ends == 1);
  TROUPE_FUZZ_CHECK(!failed);
  TROUPE_FUZZ_CHECK(items.size() <= 4);
  for (json::value& item : items) check_reply(c, std::move(item), nullptr);
}

// grpc_server.cpp's call::OnReadDone, then complete() or start_stream().
void server_request(troupe::fuzz::grpc_world& world, const grpc_case& c, const std::string& bytes) {
  // The bytes travel in a gRPC byte buffer, as they arrive.
  const std::optional<std::string> received = codec::bytes_of(codec::buffer_of(bytes));
  TROUPE_FUZZ_CHECK(received && *received == bytes);
  const std::unique_ptr<pb::Message> request(c.message->New());
  if (!request->ParseFromString(*received)) return;  // INVALID_ARGUMENT
  const json::object params = checked_json(*request);
  if (c.stream) {
    server_stream(world, c, params);
    return;
  }

  std::optional<gw::call_result> result;
  int completions = 0;
  world.table.call(c.name, params, std::chrono::seconds(5), [&](gw::call_result r) {
    ++completions;
    result = std::move(r);
  });
  world.system.run_until_idle();
  TROUPE_FUZZ_CHECK(completions == 1);
  if (const auto* failed = std::get_if<gw::call_failure>(&*result)) {
    TROUPE_FUZZ_CHECK(failed->kind == gw::failure::invalid_params);
    TROUPE_FUZZ_CHECK(c.name == "shop.note");  // only note has a member narrower than its field
    return;
  }
  // The echoing method answers with the request itself.
  check_reply(c, std::move(std::get<json::value>(*result)), c.name == "shop.order" ? &params : nullptr);
}

// grpc_client.cpp's complete() on an OK status.
void client_reply(const grpc_case& c, const std::string& bytes) {
  const std::unique_ptr<pb::Message> reply(c.message->New());
  if (!reply->ParseFromString(bytes)) return;  // errc::malformed_message
  json::object o = codec::message_to_json(*reply);
  TROUPE_FUZZ_CHECK(o.size() == static_cast<std::size_t>(reply->GetDescriptor()->field_count()));
  const json::value result = c.unwrap ? std::move(o["value"]) : json::value(std::move(o));
  (void)text_of(result);
}

// grpc_client's connect() and the gateway's compile() up to the pool.
void proto_text(const std::string& text) {
  pb::FileDescriptorProto file;
  if (!codec::parse_proto(text, file).empty()) return;
  TROUPE_FUZZ_CHECK(file.dependency_size() == 0);
  file.set_name("fuzz_grpc_input.proto");
  pb::DescriptorPool pool;
  const pb::FileDescriptor* built = pool.BuildFile(file);
  if (built == nullptr) return;
  pb::DynamicMessageFactory factory(&pool);
  for (int s = 0; s < built->service_count(); ++s) {
    for (int m = 0; m < built->service(s)->method_count(); ++m) {
      const pb::MethodDescriptor* rpc = built->service(s)->method(m);
      TROUPE_FUZZ_CHECK(factory.GetPrototype(rpc->input_type()) != nullptr);
      TROUPE_FUZZ_CHECK(factory.GetPrototype(rpc->output_type()) != nullptr);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    // protobuf logs every refused string (invalid UTF-8) and every .proto
    // that does not build; the checks above say what matters.
    pb::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  troupe::fuzz::grpc_world& world = troupe::fuzz::grpc_world::instance();
  const grpc_case& c = world.cases[data[0] % world.cases.size()];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);  // NOLINT: bytes as text
  switch (c.kind) {
    case grpc_case::side::server_request:
      server_request(world, c, rest);
      break;
    case grpc_case::side::client_reply:
      client_reply(c, rest);
      break;
    case grpc_case::side::proto_text:
      proto_text(rest);
      break;
  }
  return 0;
}
