// The multi-process test executable is also its own child program (see
// process_fixture.hpp): started by spawn_node(), troupe::run() makes it a node.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "process_fixture.hpp"

TROUPE_REGISTER_ACTOR(it::echo_actor);
TROUPE_REGISTER_ACTOR(it::relay_actor);

namespace {

// hosts_test.cpp's "other machine": a node listening on TCP in its own network
// namespace, serving until it is killed (or gets SIGTERM).
//   --host-node NAME ENDPOINT COOKIE READY_FD [TLS_DIR CERT]
int host_node(int argc, char** argv) {
  if (argc < 6) return 2;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread: all inherit it
  troupe::node_config cfg;
  cfg.name = argv[2];
  cfg.listen = argv[3];
  cfg.cookie = argv[4];
  cfg.system.worker_threads = 2;
  if (argc >= 8) {
    const std::string dir = argv[6], cert = argv[7];
    cfg.tls.enabled = true;
    cfg.tls.certificate_file = dir + "/" + cert + ".pem";
    cfg.tls.private_key_file = dir + "/" + cert + ".key";
    cfg.tls.ca_file = dir + "/ca.pem";
  }
  troupe::node n(cfg);
  n.publish("echo", n.spawn<it::echo_actor>());
  n.publish("relay", n.spawn<it::relay_actor>());
  const int ready = std::atoi(argv[5]);
  const char up = 1;
  if (::write(ready, &up, 1) != 1) return 1;
  ::close(ready);
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--host-node") == 0) return host_node(argc, argv);
  return troupe::run(
      argc, argv,
      [&] {
        ::testing::InitGoogleTest(&argc, argv);
        return RUN_ALL_TESTS();
      },
      [&](troupe::node& n) {
        // Roles a test can ask for with node_spawn_options::args.
        for (int i = 1; i < argc; ++i) {
          if (std::strcmp(argv[i], "publish") == 0) n.publish("echo", n.spawn<it::echo_actor>());
        }
      });
}
