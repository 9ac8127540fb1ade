// The gRPC client actor (see grpc.hpp): the .proto parsed by protobuf's own
// parser (libprotoc), dynamic messages, gRPC's generic stub with the callback
// API (no thread waits on the network), one reply or one error per call.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <limits>
#include <map>

#include "grpc_codec.hpp"
#include "troupe/gateway/grpc.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::gateway {

namespace json = boost::json;
namespace pb = google::protobuf;

namespace {

[[noreturn]] void refuse(const std::string& why) {
  throw troupe_error(error(errc::invalid_request, "gRPC client: " + why));
}

struct unary_method {
  std::string path;  // "/pkg.service/method"
  const pb::Message* request = nullptr;
  const pb::Message* reply = nullptr;
  bool unwrap = false;  // the reply has one field, `value`: the call's result is that field
};

// The parsed service and the channel, shared by the actor and its calls in flight.
struct connection {
  pb::DescriptorPool pool;
  pb::DynamicMessageFactory factory{&pool};
  std::map<std::string, unary_method, std::less<>> methods;  // "service.method"
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
};

std::shared_ptr<connection> connect(const grpc_endpoint& e) {
  pb::FileDescriptorProto file;
  if (std::string bad = grpc_codec::parse_proto(e.proto, file); !bad.empty()) refuse(bad);
  file.set_name("troupe_grpc_client.proto");
  auto c = std::make_shared<connection>();
  const pb::FileDescriptor* fd = c->pool.BuildFile(file);
  if (fd == nullptr) refuse("the .proto does not build (an undefined or duplicate name?)");
  for (int s = 0; s < fd->service_count(); ++s) {
    const pb::ServiceDescriptor* service = fd->service(s);
    for (int m = 0; m < service->method_count(); ++m) {
      const pb::MethodDescriptor* method = service->method(m);
      if (method->client_streaming() || method->server_streaming()) continue;  // unary calls only
      unary_method u;
      u.path = "/" + service->full_name() + "/" + method->name();
      u.request = c->factory.GetPrototype(method->input_type());
      u.reply = c->factory.GetPrototype(method->output_type());
      u.unwrap = method->output_type()->field_count() == 1 && method->output_type()->field(0)->name() == "value";
      c->methods.emplace(service->name() + "." + method->name(), std::move(u));
    }
  }
  if (c->methods.empty()) refuse("the .proto has no unary rpc");
  grpc::ChannelArguments args;
  const int limit = static_cast<int>(std::min<std::size_t>(e.max_message_bytes, std::numeric_limits<int>::max()));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  c->channel = grpc::CreateCustomChannel(e.target, grpc::InsecureChannelCredentials(), args);
  c->stub = std::make_unique<grpc::GenericStub>(c->channel);
  return c;
}

// The parameters as the object json_to_message fills a request from.
std::optional<std::string> by_name(json::value& params, const pb::Descriptor& request) {
  if (params.is_null() || params.is_object()) return std::nullopt;
  const json::array* a = params.if_array();
  if (a == nullptr) return std::string("parameters must be an object, an array or null");
  if (a->size() > static_cast<std::size_t>(request.field_count())) {
    return request.name() + " has " + std::to_string(request.field_count()) + " fields, got " +
           std::to_string(a->size()) + " parameters";
  }
  json::object o;
  for (std::size_t i = 0; i < a->size(); ++i) o.emplace(request.field(static_cast<int>(i))->name(), (*a)[i]);
  params = std::move(o);
  return std::nullopt;
}

errc errc_of(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return errc::timeout;
    case grpc::StatusCode::UNAVAILABLE:
      return errc::connection_lost;
    default:
      return errc::remote_fault;
  }
}

std::string_view name_of(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "status";
  }
}

// One call in flight; owned by its completion callback.
struct pending {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  reply_promise<json::value> reply;
  std::shared_ptr<connection> keep;  // the stub, channel and prototypes outlive the call
  const unary_method* method = nullptr;
  std::string name;
};

void complete(pending& p, const grpc::Status& status) {
  if (!status.ok()) {
    p.reply.fail(
        error(errc_of(status.error_code()),
              "gRPC " + p.name + ": " + std::string(name_of(status.error_code())) + ": " + status.error_message()));
    return;
  }
  std::unique_ptr<pb::Message> reply(p.method->reply->New());
  const std::optional<std::string> bytes = grpc_codec::bytes_of(p.response);
  if (!bytes || !reply->ParseFromString(*bytes)) {
    p.reply.fail(error(errc::malformed_message,
                       "gRPC " + p.name + ": the response does not parse as " + reply->GetDescriptor()->full_name()));
    return;
  }
  json::object o = grpc_codec::message_to_json(*reply);
  if (p.method->unwrap) {
    p.reply.deliver(std::move(o["value"]));
  } else {
    p.reply.deliver(std::move(o));
  }
}

struct client_actor final : actor<rpc_protocol> {
  explicit client_actor(std::shared_ptr<connection> c) : c_(std::move(c)) {}

  void on(rpc_request r, reply_promise<json::value> reply) {
    const auto found = c_->methods.find(r.method);
    if (found == c_->methods.end()) {
      std::string known;
      for (const auto& [name, m] : c_->methods) known += (known.empty() ? "" : ", ") + name;
      reply.fail(error(errc::invalid_request, "gRPC: no unary rpc '" + r.method + "' (the .proto has " + known + ")"));
      return;
    }
    const unary_method& method = found->second;
    std::unique_ptr<pb::Message> request(method.request->New());
    std::optional<std::string> bad = by_name(r.params, *request->GetDescriptor());
    if (!bad && !r.params.is_null()) {
      std::string err = grpc_codec::json_to_message(r.params, request.get());
      if (!err.empty()) bad = std::move(err);
    }
    if (bad) {
      reply.fail(error(errc::invalid_request, "gRPC " + r.method + ": " + *bad));
      return;
    }
    auto* p = new pending;  // owned by the completion below
    p->request = grpc_codec::buffer_of(request->SerializeAsString());
    p->reply = std::move(reply);
    p->keep = c_;
    p->method = &method;
    p->name = r.method;
    p->context.set_deadline(std::chrono::system_clock::now() + r.timeout);
    c_->stub->UnaryCall(&p->context, method.path, grpc::StubOptions(), &p->request, &p->response,
                        [p](const grpc::Status& status) {
                          const std::unique_ptr<pending> owned(p);
                          complete(*owned, status);
                        });
  }

  void on(rpc_close /*unused*/) { stop(); }

 private:
  std::shared_ptr<connection> c_;
};

}  // namespace

grpc_client::grpc_client(troupe::system& sys, const grpc_endpoint& endpoint)
    : actor_(sys.spawn<client_actor>(connect(endpoint))) {}

grpc_client::~grpc_client() { (void)actor_.tell(rpc_close{}); }

}  // namespace troupe::gateway
