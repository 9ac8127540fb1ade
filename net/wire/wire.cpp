// The pure parts of the node protocol (see wire.hpp).
#include "wire/wire.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "os/os.hpp"
#include "troupe/runtime/serialization.hpp"

namespace troupe::detail {

namespace {
constexpr std::size_t max_name_bytes = 64;
constexpr std::size_t max_endpoint_bytes = 300;
constexpr std::size_t min_cookie_chars = 16;
constexpr std::size_t max_cookie_bytes = 4096;
}  // namespace

// --- hello ------------------------------------------------------------------------------

namespace {
// What a hello and a challenge start with: the magic and the wire version.
expected<void> read_preamble(wire_reader& in) {
  std::uint32_t magic = 0;
  std::uint16_t version = 0;
  if (!in.read_scalar(magic) || magic != hello_magic) {
    return error(errc::malformed_message, "not a troupe node (bad magic)");
  }
  if (!in.read_scalar(version)) return error(errc::malformed_message, "truncated: no wire version");
  if (version != wire_version) {
    return error(errc::protocol_mismatch,
                 "wire version " + std::to_string(version) + ", this node speaks " + std::to_string(wire_version));
  }
  return {};
}
}  // namespace

std::vector<std::byte> encode_hello(const hello_info& h,
                                    std::span<const std::pair<std::uint64_t, std::uint64_t>> schema) {
  std::vector<std::byte> bytes;
  wire_writer out(bytes);
  out.write_scalar(hello_magic);
  out.write_scalar(wire_version);
  troupe::encode(out, h.name);
  out.write_scalar(h.incarnation);
  out.write_scalar(h.anchor_id);
  out.write_scalar(h.ring_bytes);
  out.write_scalar(h.host);
  troupe::encode(out, h.endpoint);
  out.write_varint(schema.size());
  for (const auto& [id, fingerprint] : schema) {
    out.write_scalar(id);
    out.write_scalar(fingerprint);
  }
  return bytes;
}

expected<hello_info> parse_hello(std::span<const std::byte> bytes) {
  wire_reader in(bytes);
  hello_info h;
  if (auto ok = read_preamble(in); !ok) return ok.error();
  std::size_t count = 0;
  if (!troupe::decode(in, h.name) || !in.read_scalar(h.incarnation) || !in.read_scalar(h.anchor_id) ||
      !in.read_scalar(h.ring_bytes) || !in.read_scalar(h.host) || !troupe::decode(in, h.endpoint) ||
      !in.read_length(count, 16)) {
    return error(errc::malformed_message, "malformed hello: " + in.failure());
  }
  if (h.name.size() > max_name_bytes || !valid_node_name(h.name)) {
    return error(errc::malformed_message, "hello with an invalid node name");
  }
  if (h.endpoint.size() > max_endpoint_bytes || (!h.endpoint.empty() && !parse_endpoint(h.endpoint))) {
    return error(errc::malformed_message, "hello with an invalid endpoint");
  }
  if (h.incarnation == 0) return error(errc::malformed_message, "hello with incarnation 0");
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t id = 0, fingerprint = 0;
    if (!in.read_scalar(id) || !in.read_scalar(fingerprint)) {
      return error(errc::malformed_message, "malformed hello schema");
    }
    if (!h.schema.emplace(id, fingerprint).second) {
      return error(errc::malformed_message, "hello schema lists type " + std::to_string(id) + " twice");
    }
  }
  if (in.remaining() != 0) return error(errc::malformed_message, "trailing bytes in hello");
  return h;
}

// --- frames -------------------------------------------------------------------------------

void append_frame(std::vector<std::byte>& out, std::uint32_t kind, std::span<const std::byte> head,
                  std::span<const std::byte> body) {
  const std::size_t size = head.size() + body.size();
  const auto length = static_cast<std::uint32_t>(size);
  const std::size_t at = out.size();
  out.resize(at + frame_head_bytes + size);
  std::byte* p = out.data() + at;
  std::memcpy(p, &length, 4);
  std::memcpy(p + 4, &kind, 4);
  if (!head.empty()) std::memcpy(p + frame_head_bytes, head.data(), head.size());
  if (!body.empty()) std::memcpy(p + frame_head_bytes + head.size(), body.data(), body.size());
}

frame_status next_frame(std::span<const std::byte> bytes, std::size_t& offset, std::size_t max_body, frame_view& out,
                        std::string& defect) {
  if (offset > bytes.size()) {
    defect = "frame offset past the buffer";
    return frame_status::defect;
  }
  const std::size_t available = bytes.size() - offset;
  if (available < frame_head_bytes) return frame_status::incomplete;
  std::uint32_t length = 0, kind = 0;
  std::memcpy(&length, bytes.data() + offset, 4);
  std::memcpy(&kind, bytes.data() + offset + 4, 4);
  // Checked before anything waits for (or allocates) the body.
  if (length > max_body) {
    defect = "a frame of " + std::to_string(length) + " bytes exceeds the limit of " + std::to_string(max_body);
    return frame_status::defect;
  }
  if (available - frame_head_bytes < length) return frame_status::incomplete;
  out.kind = kind;
  out.body = bytes.subspan(offset + frame_head_bytes, length);
  offset += frame_head_bytes + length;
  return frame_status::frame;
}

// --- authentication -----------------------------------------------------------------------

nonce fresh_nonce() {
  nonce n{};
  // RAND_bytes is OpenSSL's CSPRNG (seeded from getrandom); failure is fatal
  // here: a predictable nonce would make proofs replayable.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1) {
    throw troupe_error(error(errc::connection_lost, "no randomness for an authentication nonce (RAND_bytes failed)"));
  }
  return n;
}

std::vector<std::byte> encode_challenge(const nonce& n) {
  std::vector<std::byte> bytes;
  wire_writer out(bytes);
  out.write_scalar(hello_magic);
  out.write_scalar(wire_version);
  out.write_bytes(n.data(), n.size());
  return bytes;
}

expected<nonce> parse_challenge(std::span<const std::byte> body) {
  wire_reader in(body);
  nonce n{};
  if (auto ok = read_preamble(in); !ok) return ok.error();
  if (!in.read_bytes(n.data(), n.size()) || in.remaining() != 0) {
    return error(errc::malformed_message, "malformed challenge");
  }
  return n;
}

auth_mac compute_mac(std::string_view cookie, std::string_view role, const nonce& dialer, const nonce& acceptor,
                     std::span<const std::byte> transcript) {
  std::vector<unsigned char> data;
  data.reserve(role.size() + 1 + 2 * dialer.size() + transcript.size());
  data.insert(data.end(), role.begin(), role.end());
  data.push_back(0);  // the label ends here: no role is a prefix of another's input
  for (const nonce* n : {&dialer, &acceptor}) {
    const auto* p = reinterpret_cast<const unsigned char*>(n->data());
    data.insert(data.end(), p, p + n->size());
  }
  const auto* t = reinterpret_cast<const unsigned char*>(transcript.data());
  data.insert(data.end(), t, t + transcript.size());
  auth_mac mac{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), cookie.data(), static_cast<int>(cookie.size()), data.data(), data.size(),
           reinterpret_cast<unsigned char*>(mac.data()), &length) == nullptr ||
      length != mac.size()) {
    throw troupe_error(error(errc::connection_lost, "HMAC-SHA256 failed"));
  }
  return mac;
}

bool macs_equal(const auth_mac& a, std::span<const std::byte> b) noexcept {
  return b.size() == a.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// --- the cookie ---------------------------------------------------------------------------

std::string default_cookie_path() {
  if (const char* path = std::getenv("TROUPE_COOKIE_FILE"); path != nullptr && *path != '\0') return path;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && *home != '\0' ? home : "/tmp") + "/.troupe/cookie";
}

namespace {

expected<void> create_cookie(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return error(errc::connection_lost, errno_text(("mkdir " + dir).c_str()));
    }
  }
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) return error(errc::connection_lost, "no randomness for a cookie");
  static constexpr char hex[] = "0123456789abcdef";
  std::string text;
  for (unsigned char c : random) {
    text += hex[c >> 4];
    text += hex[c & 15];
  }
  text += '\n';
  // Written whole under a temporary name, then connected into place: a node that
  // starts at the same moment reads either no file or the whole cookie.
  std::string temporary = path + ".XXXXXX";
  unique_fd fd(::mkostemp(temporary.data(), O_CLOEXEC));  // mode 0600
  if (!fd) return error(errc::connection_lost, errno_text(("create " + temporary).c_str()));
  const bool written = ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int link_result = written ? ::link(temporary.c_str(), path.c_str()) : -1;
  const int link_errno = errno;
  ::unlink(temporary.c_str());
  if (!written) return error(errc::connection_lost, "could not write the cookie file " + path);
  if (link_result != 0 && link_errno != EEXIST) {  // EEXIST: another node made it first; read theirs
    errno = link_errno;
    return error(errc::connection_lost, errno_text(("connection " + path).c_str()));
  }
  return {};
}

}  // namespace

expected<std::string> load_cookie(const std::string& path, bool create) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd && errno == ENOENT && create) {
    if (auto made = create_cookie(path); !made) return made.error();
    fd = unique_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  }
  if (!fd) return error(errc::connection_lost, "cookie file: " + errno_text(("open " + path).c_str()));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return error(errc::connection_lost, errno_text(("stat " + path).c_str()));
  if (!S_ISREG(st.st_mode)) return error(errc::connection_lost, "cookie file " + path + " is not a regular file");
  if (st.st_uid != ::getuid()) return error(errc::connection_lost, "cookie file " + path + " belongs to another user");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return error(errc::connection_lost, "cookie file " + path + " has mode " + mode +
                                            ": others may read it; make it 0600 (chmod 600 " + path + ")");
  }
  if (st.st_size > static_cast<off_t>(max_cookie_bytes)) {
    return error(errc::connection_lost, "cookie file " + path + " is larger than 4 KiB");
  }
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  text = first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
  if (text.size() < min_cookie_chars) {
    return error(errc::connection_lost, "cookie file " + path + " holds fewer than 16 characters");
  }
  return text;
}

// --- endpoints and hosts ---------------------------------------------------------------------

expected<tcp_endpoint> parse_endpoint(std::string_view text, bool allow_any_port) {
  const std::string original(text);
  auto bad = [&](const char* why) {
    return error(errc::no_such_node, "bad endpoint '" + original + "' (" + why + "; expected tcp://host:port)");
  };
  constexpr std::string_view scheme = "tcp://";
  if (!text.starts_with(scheme)) return bad("no tcp:// scheme");
  text.remove_prefix(scheme.size());
  tcp_endpoint e;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("unclosed IPv6 bracket");
    }
    e.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    e.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (e.host.empty() || e.host.size() > 255) return bad("no host");
  for (char c : e.host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == ':' || c == '_' || c == '%';
    if (!ok) return bad("invalid character in host");
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) return bad("bad port");
  if (port == 0 && !allow_any_port) return bad("port 0");
  e.port = static_cast<std::uint16_t>(port);
  return e;
}

std::string format_endpoint(std::string_view host, std::uint16_t port) {
  // Appended piece by piece: GCC 12 reports a false -Wrestrict on "literal" + std::string at -O3.
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string text = "tcp://";
  if (v6) text += '[';
  text += host;
  if (v6) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

std::uint64_t host_id() {
  std::string identity;
  {
    std::ifstream boot("/proc/sys/kernel/random/boot_id");
    std::getline(boot, identity);
  }
  char ns[128] = {};
  // The calling thread's namespace: a test rig may move one thread only.
  const ssize_t n = ::readlink("/proc/thread-self/ns/net", ns, sizeof ns - 1);
  if (n > 0) identity += std::string_view(ns, static_cast<std::size_t>(n));
  if (identity.empty()) identity = "pid " + std::to_string(::getpid());  // no /proc: never shared memory
  const std::uint64_t id = fnv1a64(identity);
  return id == 0 ? 1 : id;
}

}  // namespace troupe::detail
