// XML-RPC documents to and from JSON values (see xmlrpc.hpp): libxml2's
// streaming reader checks a document's shape (size, depth, element count, no
// DTD) before xmlrpc-c's C API parses it; xmlrpc-c writes every document.
// xmlrpc-c's C API rather than its C++ one: fault codes stay ints (xmlrpc_c::fault
// holds them in an enum that has no -32700), and every value it hands out is
// owned by a handle here.
#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <xmlrpc-c/base.h>
#include <xmlrpc-c/util.h>

#include <boost/json/object.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "troupe/gateway/xmlrpc.hpp"

namespace troupe::gateway::xmlrpc {

namespace json = boost::json;

namespace {

// Sets xmlrpc-c's process-wide limits and libxml2's global state once.
void initialize_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    xmlInitParser();  // libxml2: before threads use it
    xmlrpc_limit_set(XMLRPC_NESTING_LIMIT_ID, max_value_nesting_limit);
    // Our own limits::max_body_bytes decides; xmlrpc-c's default (512 KiB) must not
    // refuse what the caller allowed.
    xmlrpc_limit_set(XMLRPC_XML_SIZE_LIMIT_ID, std::size_t{1} << 30);
  });
}

// An xmlrpc_env that frees itself; `failed()` after each call.
class env {
 public:
  env() { xmlrpc_env_init(&env_); }
  env(const env&) = delete;
  env& operator=(const env&) = delete;
  ~env() { xmlrpc_env_clean(&env_); }
  xmlrpc_env* get() noexcept { return &env_; }
  [[nodiscard]] bool failed() const noexcept { return env_.fault_occurred != 0; }
  [[nodiscard]] int code() const noexcept { return env_.fault_code; }
  [[nodiscard]] std::string text() const { return env_.fault_string ? env_.fault_string : "(no text)"; }

 private:
  xmlrpc_env env_{};
};

struct value_release {
  void operator()(xmlrpc_value* v) const noexcept { xmlrpc_DECREF(v); }
};
using value_handle = std::unique_ptr<xmlrpc_value, value_release>;

struct block_release {
  void operator()(xmlrpc_mem_block* b) const noexcept { xmlrpc_mem_block_free(b); }
};

struct c_free {
  void operator()(const void* p) const noexcept {
    std::free(const_cast<void*>(p));
  }  // NOLINT: xmlrpc-c's malloc'ed copies
};

// Thrown while converting; becomes a fault.
struct conversion_error : std::runtime_error {
  conversion_error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
  int code;
};

void check(env& e, const char* doing) {
  if (e.failed()) throw conversion_error(internal_error, std::string(doing) + ": " + e.text());
}

// --- the shape check ----------------------------------------------------------

struct reader_release {
  void operator()(xmlTextReaderPtr r) const noexcept { xmlFreeTextReader(r); }
};

void keep_first_error(void* arg, xmlErrorPtr error) {
  auto* first = static_cast<std::string*>(arg);
  if (first->empty() && error != nullptr && error->message != nullptr) {
    *first = error->message;
    while (!first->empty() && (first->back() == '\n' || first->back() == ' ')) first->pop_back();
    *first += " (line " + std::to_string(error->line) + ")";
  }
}

void ignore_generic_error(void* /*unused*/, const char* /*unused*/, ...) {}

struct xml_release {
  void operator()(xmlChar* p) const noexcept { xmlFree(p); }
};

// xmlrpc-c 1.33 crashes (a bad pointer in its error text) on an <i8> whose
// text is not a 64-bit integer ("12#3", "-", 2^64); found by fuzz_xmlrpc
// (tests/fuzz/regressions/fuzz_xmlrpc/). So an <i8> is checked here first: an
// optional sign, then digits, within range, nothing else (as xmlrpc-c wants it).
bool valid_i8(const xmlChar* content) {
  if (content == nullptr) return false;
  const std::string_view text(reinterpret_cast<const char*>(content));
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 19) return false;
  for (const char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  std::int64_t value = 0;
  const char* first = text.data() + (text.front() == '+' ? 1 : 0);
  const auto [end, error] = std::from_chars(first, text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// Streams through the document without building it: well-formed, no DTD, not
// too deep, not too many elements, every <i8> an integer. The document is not kept.
std::optional<fault> check_shape(std::string_view xml, const limits& lim) {
  if (xml.size() > lim.max_body_bytes) {
    return fault{invalid_request, "the document is " + std::to_string(xml.size()) + " bytes, more than the limit of " +
                                      std::to_string(lim.max_body_bytes)};
  }
  if (xml.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return fault{invalid_request, "the document is too large"};
  }
  // libxml2 reports some errors (an unsupported encoding) before the reader's
  // own handler is set, on this thread's generic handler: keep them off stderr.
  xmlSetGenericErrorFunc(nullptr, ignore_generic_error);
  std::unique_ptr<xmlTextReader, reader_release> reader(
      xmlReaderForMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!reader) return fault{internal_error, "libxml2 cannot start a reader"};
  std::string first_error;
  xmlTextReaderSetStructuredErrorHandler(reader.get(), keep_first_error, &first_error);
  std::size_t elements = 0;
  int step = 0;
  while ((step = xmlTextReaderRead(reader.get())) == 1) {
    const int type = xmlTextReaderNodeType(reader.get());
    if (type == XML_READER_TYPE_DOCUMENT_TYPE) {
      return fault{invalid_request, "a document type declaration (<!DOCTYPE ...>) is not allowed in XML-RPC"};
    }
    if (type != XML_READER_TYPE_ELEMENT) continue;
    if (++elements > lim.max_elements) {
      return fault{invalid_request, "more than " + std::to_string(lim.max_elements) + " elements"};
    }
    const int depth = xmlTextReaderDepth(reader.get());
    if (depth < 0 || static_cast<std::size_t>(depth) >= lim.max_element_depth) {
      return fault{invalid_request, "elements nested deeper than " + std::to_string(lim.max_element_depth) + " levels"};
    }
    const xmlChar* name = xmlTextReaderConstLocalName(reader.get());
    if (name != nullptr && std::string_view(reinterpret_cast<const char*>(name)) == "i8") {
      const std::unique_ptr<xmlChar, xml_release> content(xmlTextReaderReadString(reader.get()));
      if (!valid_i8(content.get())) return fault{invalid_request, "an <i8> value that is not a 64-bit integer"};
    }
  }
  if (step < 0) {
    return fault{parse_error,
                 "not well-formed XML: " + (first_error.empty() ? std::string("unreadable") : first_error)};
  }
  return std::nullopt;
}

// --- xmlrpc-c values to JSON --------------------------------------------------

json::value to_json(xmlrpc_value* v, std::size_t depth);

std::string read_string(env& e, const xmlrpc_value* v) {
  std::size_t length = 0;
  const char* text = nullptr;
  xmlrpc_read_string_lp(e.get(), v, &length, &text);
  check(e, "reading a string");
  std::unique_ptr<const char, c_free> owned(text);
  return {text, length};
}

json::value to_json(xmlrpc_value* v, std::size_t depth) {
  if (depth > max_value_nesting_limit) throw conversion_error(invalid_request, "values nested too deep");
  env e;
  switch (xmlrpc_value_type(v)) {
    case XMLRPC_TYPE_INT: {
      int i = 0;
      xmlrpc_read_int(e.get(), v, &i);
      check(e, "reading an int");
      return static_cast<std::int64_t>(i);
    }
    case XMLRPC_TYPE_I8: {
      xmlrpc_int64 i = 0;
      xmlrpc_read_i8(e.get(), v, &i);
      check(e, "reading an i8");
      return static_cast<std::int64_t>(i);
    }
    case XMLRPC_TYPE_BOOL: {
      xmlrpc_bool b = 0;
      xmlrpc_read_bool(e.get(), v, &b);
      check(e, "reading a boolean");
      return b != 0;
    }
    case XMLRPC_TYPE_DOUBLE: {
      double d = 0;
      xmlrpc_read_double(e.get(), v, &d);
      check(e, "reading a double");
      return d;
    }
    case XMLRPC_TYPE_DATETIME: {
      const char* text = nullptr;
      xmlrpc_read_datetime_str(e.get(), v, &text);
      check(e, "reading a dateTime.iso8601");
      std::unique_ptr<const char, c_free> owned(text);
      return json::string(text);
    }
    case XMLRPC_TYPE_STRING:
      return json::string(read_string(e, v));
    case XMLRPC_TYPE_BASE64: {
      std::size_t length = 0;
      const unsigned char* bytes = nullptr;
      xmlrpc_read_base64(e.get(), v, &length, &bytes);
      check(e, "reading base64");
      std::unique_ptr<const unsigned char, c_free> owned(bytes);
      return json::string(std::string_view(reinterpret_cast<const char*>(bytes), length));
    }
    case XMLRPC_TYPE_ARRAY: {
      const int size = xmlrpc_array_size(e.get(), v);
      check(e, "reading an array");
      json::array out;
      out.reserve(static_cast<std::size_t>(size));
      for (int i = 0; i < size; ++i) {
        xmlrpc_value* item = nullptr;
        xmlrpc_array_read_item(e.get(), v, static_cast<unsigned>(i), &item);
        check(e, "reading an array item");
        const value_handle held(item);
        out.push_back(to_json(item, depth + 1));
      }
      return out;
    }
    case XMLRPC_TYPE_STRUCT: {
      const int size = xmlrpc_struct_size(e.get(), v);
      check(e, "reading a struct");
      json::object out;
      out.reserve(static_cast<std::size_t>(size));
      for (int i = 0; i < size; ++i) {
        xmlrpc_value* key = nullptr;
        xmlrpc_value* member = nullptr;
        xmlrpc_struct_read_member(e.get(), v, static_cast<unsigned>(i), &key, &member);
        check(e, "reading a struct member");
        const value_handle held_key(key);
        const value_handle held_member(member);
        out[read_string(e, key)] = to_json(member, depth + 1);
      }
      return out;
    }
    case XMLRPC_TYPE_NIL:
      return nullptr;
    default:
      throw conversion_error(invalid_request, "a value of a type XML-RPC does not define");
  }
}

// --- JSON to xmlrpc-c values --------------------------------------------------

// XML 1.0 carries it as text: valid UTF-8 without the control characters it
// forbids (even escaped) and without U+FFFE/U+FFFF.
bool xml_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    if (c == 0xEF && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xBF &&
        (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xBE) {
      return false;
    }
  }
  env e;
  xmlrpc_validate_utf8(e.get(), s.data(), s.size());
  return !e.failed();
}

// A fault's text XML can carry: as it is when it can, else with every byte
// that is not printable ASCII (or tab, LF, CR) as '?'; an exit reason may quote
// anything.
std::string as_text(std::string_view s) {
  if (xml_text(s) && s.find('\0') == std::string_view::npos) return std::string(s);
  std::string out(s);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t' && c != '\n' && c != '\r') || byte >= 0x80) c = '?';
  }
  return out;
}

value_handle checked(env& e, xmlrpc_value* v, const char* what) {
  value_handle held(v);
  if (e.failed() || !held) throw conversion_error(internal_error, std::string("cannot make ") + what + ": " + e.text());
  return held;
}

value_handle to_xmlrpc(const json::value& v, std::size_t depth) {
  if (depth > max_value_nesting_limit) {
    throw conversion_error(internal_error, "a value nested deeper than " + std::to_string(max_value_nesting_limit) +
                                               " levels has no XML-RPC form");
  }
  env e;
  switch (v.kind()) {
    case json::kind::null:
      return checked(e, xmlrpc_nil_new(e.get()), "a nil");
    case json::kind::bool_:
      return checked(e, xmlrpc_bool_new(e.get(), v.get_bool() ? 1 : 0), "a boolean");
    case json::kind::int64: {
      const std::int64_t i = v.get_int64();
      if (i >= std::numeric_limits<std::int32_t>::min() && i <= std::numeric_limits<std::int32_t>::max()) {
        return checked(e, xmlrpc_int_new(e.get(), static_cast<int>(i)), "an int");
      }
      return checked(e, xmlrpc_i8_new(e.get(), i), "an i8");
    }
    case json::kind::uint64: {
      const std::uint64_t u = v.get_uint64();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return to_xmlrpc(json::value(static_cast<std::int64_t>(u)), depth);
      }
      return checked(e, xmlrpc_double_new(e.get(), static_cast<double>(u)), "a double");
    }
    case json::kind::double_: {
      if (!std::isfinite(v.get_double()))
        throw conversion_error(internal_error, "XML-RPC has no form for NaN or infinity");
      return checked(e, xmlrpc_double_new(e.get(), v.get_double()), "a double");
    }
    case json::kind::string: {
      const json::string& s = v.get_string();
      if (xml_text(s)) return checked(e, xmlrpc_string_new_lp(e.get(), s.size(), s.data()), "a string");
      return checked(e, xmlrpc_base64_new(e.get(), s.size(), reinterpret_cast<const unsigned char*>(s.data())),
                     "base64");
    }
    case json::kind::array: {
      value_handle out = checked(e, xmlrpc_array_new(e.get()), "an array");
      for (const json::value& item : v.get_array()) {
        const value_handle element = to_xmlrpc(item, depth + 1);
        xmlrpc_array_append_item(e.get(), out.get(), element.get());  // takes its own reference
        if (e.failed()) throw conversion_error(internal_error, "cannot append to an array: " + e.text());
      }
      return out;
    }
    case json::kind::object: {
      value_handle out = checked(e, xmlrpc_struct_new(e.get()), "a struct");
      for (const json::key_value_pair& member : v.get_object()) {
        if (!xml_text(member.key())) throw conversion_error(internal_error, "a struct member name that is not text");
        const value_handle element = to_xmlrpc(member.value(), depth + 1);
        xmlrpc_struct_set_value_n(e.get(), out.get(), member.key().data(), member.key().size(), element.get());
        if (e.failed()) throw conversion_error(internal_error, "cannot set a struct member: " + e.text());
      }
      return out;
    }
  }
  throw conversion_error(internal_error, "a JSON value of an unknown kind");
}

// Runs `write` on a fresh memory block and returns what it wrote.
template <class Write>
std::string written(Write write) {
  env e;
  const std::unique_ptr<xmlrpc_mem_block, block_release> block(xmlrpc_mem_block_new(e.get(), 0));
  if (e.failed() || !block) throw conversion_error(internal_error, "cannot allocate: " + e.text());
  write(e, block.get());
  if (e.failed()) throw conversion_error(internal_error, "cannot write the document: " + e.text());
  return {static_cast<const char*>(xmlrpc_mem_block_contents(block.get())), xmlrpc_mem_block_size(block.get())};
}

}  // namespace

std::variant<decoded_call, fault> decode_call(std::string_view xml, const limits& lim) {
  initialize_once();
  if (std::optional<fault> bad = check_shape(xml, lim)) return std::move(*bad);
  env e;
  const char* name = nullptr;
  xmlrpc_value* params = nullptr;
  xmlrpc_parse_call(e.get(), xml.data(), xml.size(), &name, &params);
  if (e.failed()) return fault{invalid_request, "not an XML-RPC methodCall: " + e.text()};
  const std::unique_ptr<const char, c_free> held_name(name);
  const value_handle held_params(params);
  try {
    json::value decoded = to_json(params, 0);
    if (!decoded.is_array()) return fault{invalid_request, "the params are not a list"};
    return decoded_call{name, std::move(decoded.get_array())};
  } catch (const conversion_error& bad) {
    return fault{bad.code, bad.what()};
  }
}

std::string encode_fault(const fault& f) {
  try {
    return written([&](env& e, xmlrpc_mem_block* block) {
      env fault_env;
      const std::string text = as_text(f.message);
      xmlrpc_env_set_fault(fault_env.get(), f.code, text.c_str());
      xmlrpc_serialize_fault(e.get(), block, fault_env.get());
    });
  } catch (const conversion_error&) {
    // Out of memory: a fixed document, so a fault is still answered.
    return R"(<?xml version="1.0" encoding="UTF-8"?><methodResponse><fault><value><struct>)"
           R"(<member><name>faultCode</name><value><int>-32603</int></value></member>)"
           R"(<member><name>faultString</name><value><string>cannot write the fault</string></value></member>)"
           R"(</struct></value></fault></methodResponse>)";
  }
}

std::string encode_response(const json::value& reply) {
  initialize_once();
  try {
    const value_handle value = to_xmlrpc(reply, 0);
    return written([&](env& e, xmlrpc_mem_block* block) {
      xmlrpc_serialize_response2(e.get(), block, value.get(), xmlrpc_dialect_i8);
    });
  } catch (const conversion_error& bad) {
    return encode_fault(fault{internal_error, std::string("the reply has no XML-RPC form: ") + bad.what()});
  }
}

std::variant<std::string, fault> encode_call(std::string_view method, const json::value& params) {
  initialize_once();
  if (!xml_text(method) || method.empty()) return fault{invalid_request, "the method name is empty or not text"};
  try {
    env e;
    value_handle list = checked(e, xmlrpc_array_new(e.get()), "an array");
    const auto append = [&](const json::value& v) {
      const value_handle item = to_xmlrpc(v, 1);
      xmlrpc_array_append_item(e.get(), list.get(), item.get());
      if (e.failed()) throw conversion_error(internal_error, "cannot append a param: " + e.text());
    };
    if (params.is_array()) {
      for (const json::value& p : params.get_array()) append(p);
    } else if (!params.is_null()) {
      append(params);
    }
    const std::string name(method);
    return written([&](env& w, xmlrpc_mem_block* block) {
      xmlrpc_serialize_call2(w.get(), block, name.c_str(), list.get(), xmlrpc_dialect_i8);
    });
  } catch (const conversion_error& bad) {
    return fault{bad.code, bad.what()};
  }
}

decoded_response decode_response(std::string_view xml, const limits& lim) {
  initialize_once();
  if (std::optional<fault> bad = check_shape(xml, lim)) return {std::move(*bad), false};
  env e;
  xmlrpc_value* result = nullptr;
  int fault_code = 0;
  const char* fault_string = nullptr;
  xmlrpc_parse_response2(e.get(), xml.data(), xml.size(), &result, &fault_code, &fault_string);
  if (e.failed()) return {fault{invalid_request, "not an XML-RPC methodResponse: " + e.text()}, false};
  if (fault_string != nullptr) {
    const std::unique_ptr<const char, c_free> held(fault_string);
    return {fault{fault_code, fault_string}, true};
  }
  const value_handle held_result(result);
  try {
    return {to_json(result, 0), false};
  } catch (const conversion_error& bad) {
    return {fault{bad.code, bad.what()}, false};
  }
}

}  // namespace troupe::gateway::xmlrpc
