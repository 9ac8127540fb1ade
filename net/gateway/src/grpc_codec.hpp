// grpc_codec: protobuf messages (generated or dynamic) to and from the JSON
// values of the method table, and gRPC byte buffers to and from bytes. Shared by
// the gateway's gRPC server and its gRPC client. May use: protobuf reflection,
// gRPC's ByteBuffer, Boost.JSON. Private to troupe::gateway_grpc.
//
// message_to_json: every field by name, in declaration order; a repeated field
// is an array, a message field an object (its defaults when unset; null when
// unset and of a type that contains itself, which only a user's .proto can
// have), a proto3 optional left out is null, 64-bit integers are JSON integers
// (not strings, as protobuf's own JSON mapping would make them).
// json_to_message: an object with the fields' names; a missing or null key
// leaves its field unset; an integer that does not fit its field, a value of
// the wrong kind or a non-object is refused with a text naming the field.
#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>

namespace google::protobuf {
class Message;
class FileDescriptorProto;
}  // namespace google::protobuf

namespace troupe::gateway::grpc_codec {

boost::json::object message_to_json(const google::protobuf::Message& m);
// Empty on success, else what does not fit.
std::string json_to_message(const boost::json::value& v, google::protobuf::Message* m);

// A buffer's bytes in one string (nullopt if gRPC cannot dump it).
std::optional<std::string> bytes_of(const grpc::ByteBuffer& buffer);
grpc::ByteBuffer buffer_of(const std::string& bytes);

// Parses .proto text with protobuf's own parser (libprotoc) into `file`; empty
// on success, else the first error with its line and column. Imports are
// refused (the file must be self-contained).
std::string parse_proto(const std::string& text, google::protobuf::FileDescriptorProto& file);

}  // namespace troupe::gateway::grpc_codec
