// configure_from_command_line(): a node's settings from its command line or a
// config file (node_config.hpp).
#include <fstream>
#include <map>

#include "troupe/net/cluster.hpp"
#include "troupe/net/node_config.hpp"

namespace troupe {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

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
