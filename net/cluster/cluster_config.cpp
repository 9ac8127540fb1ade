// parse_cluster() and configure_from_command_line() (cluster.hpp, node.hpp).
#include <charconv>
#include <fstream>
#include <map>

#include "troupe/net/cluster.hpp"
#include "troupe/net/node.hpp"
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

expected<std::vector<std::string>> configure_from_command_line(node_config& config, int argc, const char* const* argv) {
  // Collected first, so the command line wins over a --config file wherever it is.
  std::map<std::string, std::string> from_args;
  std::vector<std::string> rest;
  std::string file;
  static const std::string keys[] = {"name", "listen", "advertise", "cookie-file", "cluster"};
  const auto known = [](std::string_view key) {
    for (const auto& k : keys) {
      if (k == key) return true;
    }
    return false;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (!arg.starts_with("--")) {
      rest.emplace_back(arg);
      continue;
    }
    std::string_view key = arg.substr(2);
    std::string value;
    const auto eq = key.find('=');
    if (eq != std::string_view::npos) {
      value = std::string(key.substr(eq + 1));
      key = key.substr(0, eq);
    }
    if (!known(key) && key != "config") {
      rest.emplace_back(arg);
      continue;
    }
    if (eq == std::string_view::npos) {
      if (i + 1 >= argc) return error(errc::no_such_node, "--" + std::string(key) + " wants a value");
      value = argv[++i];
    }
    if (key == "config") {
      file = value;
    } else {
      from_args[std::string(key)] = value;
    }
  }
  std::map<std::string, std::string> settings;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return error(errc::no_such_node, "cannot read the config file '" + file + "'");
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      std::string_view l = trim(line);
      if (l.empty() || l.front() == '#') continue;
      const auto eq = l.find('=');
      const std::string key(trim(l.substr(0, eq)));
      if (eq == std::string_view::npos || !known(key)) {
        return error(errc::no_such_node, file + ":" + std::to_string(number) +
                                             ": expected one of name, listen, "
                                             "advertise, cookie-file, cluster = value");
      }
      settings[key] = std::string(trim(l.substr(eq + 1)));
    }
  }
  for (auto& [key, value] : from_args) settings[key] = value;
  for (auto& [key, value] : settings) {
    if (key == "name") config.name = value;
    if (key == "listen") config.listen = value;
    if (key == "advertise") config.advertise = value;
    if (key == "cookie-file") config.cookie_file = value;
    if (key == "cluster") {
      auto cluster = parse_cluster(value);
      if (!cluster) return cluster.error();
      config.cluster = std::move(*cluster);
    }
  }
  // A cluster member must be reachable: listen on any port unless told where.
  if (config.cluster.provider != membership_provider_kind::none && config.listen.empty()) {
    config.listen = "tcp://0.0.0.0:0";
  }
  return rest;
}

}  // namespace troupe
