// parse_cluster(): a cluster spec such as "seeds=h:p,h:p;gossip_ms=200" (cluster.hpp).
#include <charconv>

#include "troupe/net/cluster.hpp"
#include "wire/wire.hpp"

namespace troupe {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char by) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto at = s.find(by);
    parts.push_back(trim(s.substr(0, at)));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

bool parse_count(std::string_view text, long long& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out > 0;
}

}  // namespace

expected<cluster_config> parse_cluster(std::string_view spec) {
  cluster_config config;
  const auto bad = [&](const std::string& why) {
    return error(errc::no_such_node, "cluster '" + std::string(spec) + "': " + why +
                                         " (expected seeds=host:port,... or etcd=http://host:port, "
                                         "options after ';': cluster=NAME, gossip_ms=N, ttl=SECONDS)");
  };
  bool first = true;
  for (std::string_view part : split(spec, ';')) {
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) return bad("'" + std::string(part) + "' is not key=value");
    const std::string_view key = trim(part.substr(0, eq));
    const std::string_view value = trim(part.substr(eq + 1));
    if (first) {
      first = false;
      if (key == "seeds") {
        config.provider = membership_provider_kind::seeds;
        for (std::string_view seed : split(value, ',')) {
          if (seed.empty()) continue;
          std::string endpoint = seed.starts_with("tcp://") ? std::string(seed) : "tcp://" + std::string(seed);
          if (auto parsed = detail::parse_endpoint(endpoint); !parsed) {
            return bad("seed '" + std::string(seed) + "': " + parsed.error().text());
          }
          config.seeds.push_back(std::move(endpoint));
        }
        if (config.seeds.empty()) return bad("no seeds");
        continue;
      }
      if (key == "etcd") {
        config.provider = membership_provider_kind::etcd;
        if (!value.starts_with("http://") || value.size() <= 7) return bad("etcd wants an http:// URL");
        config.etcd = std::string(value);
        continue;
      }
      return bad("the provider is seeds or etcd, not '" + std::string(key) + "'");
    }
    long long n = 0;
    if (key == "cluster") {
      if (value.empty() || value.find('/') != std::string_view::npos) return bad("a cluster name without '/'");
      config.cluster_name = std::string(value);
    } else if (key == "gossip_ms") {
      if (!parse_count(value, n)) return bad("gossip_ms wants a positive number");
      config.gossip_interval = std::chrono::milliseconds(n);
    } else if (key == "ttl") {
      if (!parse_count(value, n)) return bad("ttl wants a positive number of seconds");
      config.lease_ttl = std::chrono::seconds(n);
    } else {
      return bad("unknown option '" + std::string(key) + "'");
    }
  }
  if (first) return bad("empty");
  return config;
}

}  // namespace troupe
