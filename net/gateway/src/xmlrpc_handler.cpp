// The XML-RPC endpoint and its fault table (see xmlrpc.hpp): a request's body
// to methods::call, the call's one completion to a methodResponse.
#include <boost/algorithm/string/predicate.hpp>
#include <boost/algorithm/string/trim.hpp>
#include <utility>

#include "troupe/gateway/xmlrpc.hpp"

namespace troupe::gateway::xmlrpc {

namespace json = boost::json;

int code_of(failure f) noexcept {
  switch (f) {
    case failure::method_not_found:
      return method_not_found;
    case failure::invalid_params:
      return invalid_params;
    case failure::overloaded:
      return overloaded;
    case failure::timeout:
      return call_timeout;
    case failure::actor_down:
    case failure::internal:
      return internal_error;
  }
  return internal_error;
}

fault fault_of(const call_failure& f) {
  return fault{code_of(f.kind), std::string(to_string(f.kind)) + ": " + f.message};
}

json::value params_for(const methods& m, std::string_view method, json::array params) {
  if (params.size() == 1 && params.front().is_object()) {
    const method_info* info = m.find(method);
    if (info != nullptr && info->params.size() != 1) return std::move(params.front());
  }
  return params;
}

namespace {

bool xml_content_type(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  std::string trimmed = boost::algorithm::trim_copy(std::string(media));
  return trimmed.empty() || boost::algorithm::iequals(trimmed, "text/xml") ||
         boost::algorithm::iequals(trimmed, "application/xml");
}

http_reply xml_reply(std::string body) {
  http_reply r;
  r.status = 200;
  r.content_type = "text/xml";
  r.body = std::move(body);
  return r;
}

}  // namespace

// By value: the entry point every protocol shares (http_reply.hpp); XML-RPC only reads it.
void handle(const methods& m, http_request request,  // NOLINT(performance-unnecessary-value-param)
            reply_sink done, const limits& lim) {
  if (!xml_content_type(request.content_type)) {
    http_reply r;
    r.status = 415;
    r.content_type = "text/plain";
    r.body = "XML-RPC takes a text/xml body, not " + request.content_type + "\n";
    done(std::move(r));
    return;
  }
  std::variant<decoded_call, fault> decoded = decode_call(request.body, lim);
  if (auto* bad = std::get_if<fault>(&decoded)) {
    done(xml_reply(encode_fault(*bad)));
    return;
  }
  decoded_call& call = std::get<decoded_call>(decoded);
  json::value params = params_for(m, call.method, std::move(call.params));
  m.call(call.method, std::move(params), std::nullopt, [done = std::move(done)](call_result result) {
    if (auto* reply = std::get_if<json::value>(&result)) {
      done(xml_reply(encode_response(*reply)));
    } else {
      done(xml_reply(encode_fault(fault_of(std::get<call_failure>(result)))));
    }
  });
}

}  // namespace troupe::gateway::xmlrpc
