// test_pki: a throwaway certificate authority for TLS tests, made with the
// openssl tool (Debian's openssl package; scripts/deps installs it): a CA, two
// node certificates it signed, and one certificate from an unrelated CA.
//
//   troupe::test_support::test_pki pki(dir);   // throws std::runtime_error if openssl fails
//   cfg.tls = pki.tls_for("node1");
//
// Thread safety: construct on one thread; the files are read-only afterwards.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "troupe/net/node.hpp"

namespace troupe::test_support {

class test_pki {
 public:
  explicit test_pki(std::string dir) : dir_(std::move(dir)) {
    make_ca("ca");
    make_ca("rogue-ca");
    for (const char* name : {"node1", "node2"}) make_cert(name, "ca");
    make_cert("rogue", "rogue-ca");
  }

  // Settings for a node presenting `cert` (node1, node2 or rogue), trusting the test CA.
  [[nodiscard]] troupe::tls_config tls_for(const std::string& cert) const {
    troupe::tls_config tls;
    tls.enabled = true;
    tls.certificate_file = dir_ + "/" + cert + ".pem";
    tls.private_key_file = dir_ + "/" + cert + ".key";
    tls.ca_file = dir_ + "/ca.pem";
    return tls;
  }

 private:
  void run(const std::string& command) const {
    const std::string full = "cd '" + dir_ + "' && " + command + " >/dev/null 2>openssl.log";
    if (std::system(full.c_str()) != 0) {
      throw std::runtime_error("openssl failed: " + command + " (see " + dir_ + "/openssl.log)");
    }
  }
  void make_ca(const std::string& name) const {
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=" + name +
        " -keyout " + name + ".key -out " + name + ".pem");
  }
  void make_cert(const std::string& name, const std::string& ca) const {
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" + name + " -keyout " + name +
        ".key -out " + name + ".csr");
    run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
        ".key -CAcreateserial -days 2 -out " + name + ".pem");
  }
  std::string dir_;
};

}  // namespace troupe::test_support
