// The gRPC face of a method table (see grpc.hpp): the schema built from the
// methods' shapes as a FileDescriptorProto (its DebugString() is the .proto
// clients compile), dynamic messages for requests and replies, and one generic
// callback reactor per call.
#include "troupe/gateway/grpc.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/byte_buffer.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "grpc_codec.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::gateway {

namespace json = boost::json;
namespace pb = google::protobuf;
using grpc_codec::buffer_of;
using grpc_codec::bytes_of;
using grpc_codec::json_to_message;
using grpc_codec::message_to_json;

namespace {

[[noreturn]] void refuse(const std::string& why) {
  throw troupe_error(error(errc::invalid_request, "gRPC gateway: " + why));
}

// --- the schema ---------------------------------------------------------------

struct rpc_entry {
  std::string method;  // the table's name: "bank.balance"
  std::string request_type;
  std::string reply_type;
  bool wrapped_reply = false;  // the reply (a stream's item) is `<type>_reply { value = 1; }` (`<type>_item`)
  bool stream = false;         // server streaming: a stream of reply_type messages
};

class schema_builder {
 public:
  explicit schema_builder(std::string package) {
    file_.set_name("troupe_gateway.proto");
    file_.set_package(std::move(package));
    file_.set_syntax("proto3");
  }

  void add(const method_info& m) {
    const std::size_t dot = m.name.size() - m.type_name.size() - 1;
    const std::string service = m.name.substr(0, dot);
    add_record(m.request, m.name);
    rpc_entry e{m.name, m.request.name, {}, false, m.is_stream};
    if (m.reply.type == shape::kind::none) {
      e.reply_type = "empty";
      if (records_.insert("empty").second) file_.add_message_type()->set_name("empty");
    } else if (m.reply.type == shape::kind::record && !m.reply.optional) {
      add_record(m.reply, m.name);
      e.reply_type = m.reply.name;
    } else {
      shape wrapper;
      wrapper.type = shape::kind::record;
      wrapper.name = m.type_name + (m.is_stream ? "_item" : "_reply");
      wrapper.fields.push_back(shape_field{"value", m.reply});
      add_record(wrapper, m.name);
      e.reply_type = wrapper.name;
      e.wrapped_reply = true;
    }
    pb::ServiceDescriptorProto* s = service_named(service);
    pb::MethodDescriptorProto* rpc = s->add_method();
    rpc->set_name(m.type_name);
    rpc->set_input_type("." + file_.package() + "." + e.request_type);
    rpc->set_output_type("." + file_.package() + "." + e.reply_type);
    if (m.is_stream) rpc->set_server_streaming(true);
    entries_["/" + file_.package() + "." + service + "/" + m.type_name] = std::move(e);
  }

  pb::FileDescriptorProto& file() { return file_; }
  std::map<std::string, rpc_entry>& entries() { return entries_; }

 private:
  pb::ServiceDescriptorProto* service_named(const std::string& name) {
    for (int i = 0; i < file_.service_size(); ++i) {
      if (file_.service(i).name() == name) return file_.mutable_service(i);
    }
    pb::ServiceDescriptorProto* s = file_.add_service();
    s->set_name(name);
    return s;
  }

  // Adds a record (and the records it contains) once; a second, different
  // record of the same name is refused.
  void add_record(const shape& r, const std::string& method) {
    if (r.type != shape::kind::record) refuse(method + ": not a record");
    if (!records_.insert(r.name).second) return;
    pb::DescriptorProto* message = file_.add_message_type();
    message->set_name(r.name);
    int number = 0;
    for (const shape_field& f : r.fields) {
      pb::FieldDescriptorProto* field = message->add_field();
      field->set_name(f.name);
      field->set_number(++number);
      shape type = f.type;
      if (type.type == shape::kind::list) {
        field->set_label(pb::FieldDescriptorProto::LABEL_REPEATED);
        if (type.optional) refuse(method + ": member '" + f.name + "' is an optional list");
        type = type.element.front();
        if (type.type == shape::kind::list || type.optional) {
          refuse(method + ": member '" + f.name +
                 "' is a list of lists or of optionals, which protobuf cannot express");
        }
      } else {
        field->set_label(pb::FieldDescriptorProto::LABEL_OPTIONAL);
        if (type.optional && type.type != shape::kind::record) {
          // proto3 `optional`: a synthetic one-field oneof, as protoc makes it.
          field->set_proto3_optional(true);
          field->set_oneof_index(message->oneof_decl_size());
          message->add_oneof_decl()->set_name("_" + f.name);
        }
      }
      set_type(field, type, method, f.name);
    }
  }

  void set_type(pb::FieldDescriptorProto* field, const shape& type, const std::string& method,
                const std::string& member) {
    using k = shape::kind;
    switch (type.type) {
      case k::boolean:
        field->set_type(pb::FieldDescriptorProto::TYPE_BOOL);
        return;
      case k::int32:
        field->set_type(pb::FieldDescriptorProto::TYPE_INT32);
        return;
      case k::int64:
        field->set_type(pb::FieldDescriptorProto::TYPE_INT64);
        return;
      case k::uint32:
        field->set_type(pb::FieldDescriptorProto::TYPE_UINT32);
        return;
      case k::uint64:
        field->set_type(pb::FieldDescriptorProto::TYPE_UINT64);
        return;
      case k::floating:
        field->set_type(pb::FieldDescriptorProto::TYPE_DOUBLE);
        return;
      case k::text:
        field->set_type(pb::FieldDescriptorProto::TYPE_STRING);
        return;
      case k::record:
        add_record(type, method);
        field->set_type(pb::FieldDescriptorProto::TYPE_MESSAGE);
        field->set_type_name("." + file_.package() + "." + type.name);
        return;
      case k::none:
      case k::list:
      case k::opaque:
        break;
    }
    refuse(method + ": member '" + member + "' has a type protobuf cannot express" +
           (type.name.empty() ? std::string() : " (" + type.name + ")"));
  }

  pb::FileDescriptorProto file_;
  std::set<std::string> records_;
  std::map<std::string, rpc_entry> entries_;
};

grpc::StatusCode status_of(failure f) {
  switch (f) {
    case failure::method_not_found:
      return grpc::StatusCode::UNIMPLEMENTED;
    case failure::invalid_params:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case failure::overloaded:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case failure::timeout:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case failure::actor_down:
      return grpc::StatusCode::UNAVAILABLE;
    case failure::internal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

// The compiled schema: what every call reads, shared with the completions of
// calls still in flight.
struct schema {
  pb::DescriptorPool pool;
  pb::DynamicMessageFactory factory{&pool};
  std::string proto;
  struct rpc {
    rpc_entry entry;
    const pb::Message* request = nullptr;  // prototypes, owned by the factory
    const pb::Message* reply = nullptr;
  };
  std::map<std::string, rpc, std::less<>> rpcs;  // by gRPC path: "/troupe.bank/balance"
};

// The user's message `got` must have exactly the fields of the generated
// `want` (names, types, repeated or not; numbers and message names are the
// user's), recursively.
void check_same_shape(const pb::Descriptor* want, const pb::Descriptor* got, const std::string& where, int depth = 0) {
  if (depth > detail::max_shape_depth) return;
  for (int i = 0; i < want->field_count(); ++i) {
    const pb::FieldDescriptor* w = want->field(i);
    const pb::FieldDescriptor* g = got->FindFieldByName(w->name());
    const std::string field = where + ": " + got->full_name() + "." + w->name();
    if (g == nullptr) refuse(where + ": the .proto's " + got->full_name() + " has no field '" + w->name() + "'");
    if (g->type() != w->type()) {
      refuse(field + " is " + g->type_name() + " in the .proto, " + w->type_name() + " in the protocol");
    }
    if (g->is_repeated() != w->is_repeated()) {
      refuse(field + (g->is_repeated() ? " is repeated in the .proto, not in the protocol"
                                       : " is repeated in the protocol, not in the .proto"));
    }
    if (w->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      check_same_shape(w->message_type(), g->message_type(), where, depth + 1);
    }
  }
  for (int i = 0; i < got->field_count(); ++i) {
    if (want->FindFieldByName(got->field(i)->name()) == nullptr) {
      refuse(where + ": the .proto's " + got->full_name() + " has a field '" + got->field(i)->name() +
             "' the protocol does not");
    }
  }
}

std::shared_ptr<schema> compile(const methods& table, const grpc_settings& settings) {
  pb::FileDescriptorProto user;
  if (!settings.proto.empty()) {
    if (std::string bad = grpc_codec::parse_proto(settings.proto, user); !bad.empty()) refuse(bad);
    user.set_name("troupe_gateway_user.proto");
  }
  const std::string package = settings.proto.empty() ? settings.package : user.package();
  schema_builder b(package);
  for (const method_info& m : table.list()) b.add(m);
  auto s = std::make_shared<schema>();
  if (settings.proto.empty()) {
    const pb::FileDescriptor* file = s->pool.BuildFile(b.file());
    if (file == nullptr) refuse("the generated schema does not build (a name used twice?)");
    s->proto = file->DebugString();
    for (auto& [path, e] : b.entries()) {
      schema::rpc r;
      r.request = s->factory.GetPrototype(s->pool.FindMessageTypeByName(package + "." + e.request_type));
      r.reply = s->factory.GetPrototype(s->pool.FindMessageTypeByName(package + "." + e.reply_type));
      r.entry = std::move(e);
      s->rpcs.emplace(path, std::move(r));
    }
    return s;
  }
  // The user's .proto: every method must be there with the generated shapes;
  // it is served with the user's numbers and names.
  pb::DescriptorPool generated_pool;
  const pb::FileDescriptor* generated = generated_pool.BuildFile(b.file());
  if (generated == nullptr) refuse("the generated schema does not build (a name used twice?)");
  const pb::FileDescriptor* file = s->pool.BuildFile(user);
  if (file == nullptr) refuse("the .proto does not build (an undefined or duplicate name?)");
  s->proto = file->DebugString();
  for (int i = 0; i < generated->service_count(); ++i) {
    const pb::ServiceDescriptor* want_service = generated->service(i);
    const pb::ServiceDescriptor* got_service = file->FindServiceByName(want_service->name());
    if (got_service == nullptr) refuse("the .proto has no service '" + want_service->name() + "'");
    for (int j = 0; j < want_service->method_count(); ++j) {
      const pb::MethodDescriptor* want = want_service->method(j);
      const pb::MethodDescriptor* got = got_service->FindMethodByName(want->name());
      const std::string where = want_service->name() + "." + want->name();
      if (got == nullptr)
        refuse("the .proto's service '" + want_service->name() + "' has no rpc '" + want->name() + "'");
      if (got->client_streaming() || got->server_streaming() != want->server_streaming()) {
        refuse(where + ": " +
               (want->server_streaming() ? "the protocol streams its answer, the .proto does not"
                                         : "the .proto streams, the protocol does not (or the client does)"));
      }
      check_same_shape(want->input_type(), got->input_type(), where);
      check_same_shape(want->output_type(), got->output_type(), where);
      const std::string path = "/" + want_service->full_name() + "/" + want->name();
      schema::rpc r;
      r.request = s->factory.GetPrototype(got->input_type());
      r.reply = s->factory.GetPrototype(got->output_type());
      r.entry = b.entries().at(path);
      s->rpcs.emplace(path, std::move(r));
    }
  }
  return s;
}

// --- one call -------------------------------------------------------------------

class call final : public grpc::ServerGenericBidiReactor {
 public:
  call(const methods& table, std::shared_ptr<schema> s, grpc::GenericCallbackServerContext* ctx)
      : table_(table), schema_(std::move(s)), ctx_(ctx), state_(std::make_shared<shared>()) {
    state_->reactor = this;
    const auto found = schema_->rpcs.find(ctx->method());
    if (found == schema_->rpcs.end()) {
      finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no method " + ctx->method()));
      return;
    }
    rpc_ = &found->second;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the call carried no request message"));
      return;
    }
    std::unique_ptr<pb::Message> request(rpc_->request->New());
    const std::optional<std::string> bytes = bytes_of(request_);
    if (!bytes || !request->ParseFromString(*bytes)) {
      finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the request does not parse as " + rpc_->request->GetDescriptor()->full_name()));
      return;
    }
    std::optional<std::chrono::nanoseconds> timeout;
    const auto deadline = ctx_->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::system_clock::now());
    }
    if (rpc_->entry.stream) {
      start_stream(message_to_json(*request), timeout);
      return;
    }
    table_.call(rpc_->entry.method, message_to_json(*request), timeout,
                [state = state_, s = schema_, rpc = rpc_](call_result r) { complete(state, *rpc, std::move(r)); });
  }

  void OnCancel() override {
    cancel_stream();
    finish(grpc::Status::CANCELLED);
  }

  void OnWriteDone(bool ok) override {
    // Only streams write one message at a time; a unary reply finishes with its write.
    {
      std::lock_guard lock(state_->mutex);  // see start_stream() for why the calls are under it
      state_->queue.pop_front();
      state_->writing = false;
      if (!ok) {
        state_->queue.clear();  // the client is gone; OnCancel ends the stream
      } else if (state_->finished) {
        state_->queue.clear();
      } else if (!state_->queue.empty()) {
        state_->writing = true;
        StartWrite(&state_->queue.front());
      } else if (state_->end_status) {
        state_->finished = true;
        Finish(*state_->end_status);
      }
    }
    if (!ok) cancel_stream();
  }

  void OnDone() override {
    {
      std::lock_guard lock(state_->mutex);
      state_->reactor = nullptr;
    }
    delete this;
  }

 private:
  // What a completion arriving on a scheduler worker needs: whether this
  // call is still there and not yet finished.
  struct shared {
    std::mutex mutex;
    call* reactor = nullptr;
    bool finished = false;
    // A stream: the items not yet written (the front one is being written
    // while `writing`), how it ended, and how to cancel it.
    std::deque<grpc::ByteBuffer> queue;
    bool writing = false;
    std::optional<grpc::Status> end_status;
    std::function<void()> cancel;
    bool cancelled = false;
  };

  // Items buffered for a slow client at most; one more fails the stream as overloaded.
  static constexpr std::size_t max_queued_items = 256;

  void start_stream(json::value params, std::optional<std::chrono::nanoseconds> timeout) {
    auto bad_item = std::make_shared<std::string>();  // written and read on the relay's thread only
    stream_callbacks cb{[state = state_, s = schema_, rpc = rpc_, bad_item](json::value v) {
                          std::unique_ptr<pb::Message> item(rpc->reply->New());
                          std::string err;
                          if (rpc->entry.wrapped_reply) {
                            json::object o;
                            o.emplace("value", std::move(v));
                            err = json_to_message(o, item.get());
                          } else {
                            err = json_to_message(v, item.get());
                          }
                          if (!err.empty()) {
                            *bad_item = "an item does not fit its message: " + err;
                            return false;
                          }
                          // StartWrite and Finish are called under the lock: once `finished`
                          // is set nobody starts a write, and the reactor cannot be done (and
                          // deleted) between the check and the call. gRPC never runs a
                          // reaction inline from StartWrite or Finish, so this cannot deadlock.
                          std::lock_guard lock(state->mutex);
                          if (state->finished || state->reactor == nullptr) return false;
                          if (state->queue.size() >= max_queued_items) return false;
                          state->queue.push_back(buffer_of(item->SerializeAsString()));
                          if (!state->writing) {
                            state->writing = true;
                            state->reactor->StartWrite(&state->queue.front());
                          }
                          return true;
                        },
                        [state = state_, bad_item](std::optional<call_failure> f) {
                          grpc::Status status = grpc::Status::OK;
                          if (!bad_item->empty()) {
                            status = grpc::Status(grpc::StatusCode::INTERNAL, *bad_item);
                          } else if (f) {
                            status = grpc::Status(status_of(f->kind), f->message);
                          }
                          std::lock_guard lock(state->mutex);
                          if (state->finished || state->reactor == nullptr) return;
                          state->end_status = status;
                          if (state->writing) return;  // OnWriteDone finishes once the queue is written
                          state->finished = true;
                          state->reactor->Finish(status);
                        }};
    std::function<void()> cancel = table_.call_stream(rpc_->entry.method, std::move(params), timeout, std::move(cb));
    bool cancel_now = false;
    {
      std::lock_guard lock(state_->mutex);
      state_->cancel = cancel;
      cancel_now = state_->cancelled;
    }
    if (cancel_now) cancel();
  }

  void cancel_stream() {
    std::function<void()> cancel;
    {
      std::lock_guard lock(state_->mutex);
      state_->cancelled = true;
      cancel = state_->cancel;
    }
    if (cancel) cancel();
  }

  void finish(const grpc::Status& status) {
    std::lock_guard lock(state_->mutex);
    if (state_->finished || state_->reactor == nullptr) return;
    state_->finished = true;
    Finish(status);
  }

  static void complete(const std::shared_ptr<shared>& state, const schema::rpc& rpc, call_result r) {
    if (auto* f = std::get_if<call_failure>(&r)) {
      std::lock_guard lock(state->mutex);
      if (state->finished || state->reactor == nullptr) return;
      state->finished = true;
      state->reactor->Finish(grpc::Status(status_of(f->kind), f->message));
      return;
    }
    std::unique_ptr<pb::Message> reply(rpc.reply->New());
    json::value& v = std::get<json::value>(r);
    std::string err;
    if (rpc.entry.wrapped_reply) {
      json::object o;
      o.emplace("value", std::move(v));
      err = json_to_message(o, reply.get());
    } else if (rpc.entry.reply_type != "empty") {
      err = json_to_message(v, reply.get());
    }
    grpc::ByteBuffer bytes = buffer_of(reply->SerializeAsString());
    // Under the lock (see start_stream()): OnDone() then sees reply_ written.
    std::lock_guard lock(state->mutex);
    if (state->finished || state->reactor == nullptr) return;  // cancelled meanwhile
    state->finished = true;
    call* c = state->reactor;
    if (!err.empty()) {
      c->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "the reply does not fit its message: " + err));
      return;
    }
    c->reply_ = bytes;  // ByteBuffer copies share its slices (no move assignment)
    c->StartWriteAndFinish(&c->reply_, grpc::WriteOptions(), grpc::Status::OK);
  }

  const methods& table_;
  std::shared_ptr<schema> schema_;
  grpc::GenericCallbackServerContext* ctx_;
  std::shared_ptr<shared> state_;
  const schema::rpc* rpc_ = nullptr;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

class generic_service final : public grpc::CallbackGenericService {
 public:
  generic_service(const methods& table, std::shared_ptr<schema> s) : table_(table), schema_(std::move(s)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new call(table_, schema_, ctx);  // deletes itself in OnDone()
  }

 private:
  const methods& table_;
  std::shared_ptr<schema> schema_;
};

}  // namespace

struct grpc_gateway::impl {
  std::shared_ptr<schema> compiled;
  std::unique_ptr<generic_service> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

std::string proto_of(const methods& table, const std::string& package) {
  grpc_settings settings;
  settings.package = package;
  return compile(table, settings)->proto;
}

grpc_gateway::grpc_gateway(const methods& table, const grpc_settings& settings) : impl_(std::make_unique<impl>()) {
  impl_->compiled = compile(table, settings);
  impl_->service = std::make_unique<generic_service>(table, impl_->compiled);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(settings.address, grpc::InsecureServerCredentials(), &impl_->port);
  builder.RegisterCallbackGenericService(impl_->service.get());
  const int limit =
      static_cast<int>(std::min<std::size_t>(settings.max_message_bytes, std::numeric_limits<int>::max()));
  builder.SetMaxReceiveMessageSize(limit);
  builder.SetMaxSendMessageSize(limit);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) refuse("cannot listen on " + settings.address);
}

grpc_gateway::~grpc_gateway() {
  // Calls still waiting for an actor are cancelled at once (their completions
  // then find them finished); Shutdown returns when every call is done.
  impl_->server->Shutdown(std::chrono::system_clock::now());
  impl_->server->Wait();
}

int grpc_gateway::port() const noexcept { return impl_->port; }
const std::string& grpc_gateway::proto() const noexcept { return impl_->compiled->proto; }

}  // namespace troupe::gateway
