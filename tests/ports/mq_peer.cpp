// mq_peer: the outside program of the POSIX queue tests, written against the
// C API only (mq_open, mq_send, mq_receive), as a C program would be.
//   mq_peer send /name PRIO TEXT [PRIO TEXT...]   sends each, exits 0
//   mq_peer receive /name COUNT                   prints "PRIO TEXT" per message
//   mq_peer msgsnd KEY TYPE TEXT [TYPE TEXT...]   System V: sends each, exits 0
//   mq_peer msgrcv KEY TYPE COUNT                 System V: prints "TYPE TEXT" per message
#include <fcntl.h>
#include <mqueue.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "send") == 0 && argc % 2 == 1) {
    const mqd_t q = mq_open(argv[2], O_WRONLY);
    if (q == static_cast<mqd_t>(-1)) return std::perror("mq_open"), 1;
    for (int i = 3; i + 1 < argc; i += 2) {
      if (mq_send(q, argv[i + 1], std::strlen(argv[i + 1]), static_cast<unsigned>(std::atoi(argv[i]))) != 0) {
        return std::perror("mq_send"), 1;
      }
    }
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "receive") == 0) {
    const mqd_t q = mq_open(argv[2], O_RDONLY);
    if (q == static_cast<mqd_t>(-1)) return std::perror("mq_open"), 1;
    mq_attr attr{};
    mq_getattr(q, &attr);
    char* buffer = static_cast<char*>(std::malloc(static_cast<std::size_t>(attr.mq_msgsize)));
    for (int i = 0; i < std::atoi(argv[3]); ++i) {
      unsigned prio = 0;
      const ssize_t n = mq_receive(q, buffer, static_cast<std::size_t>(attr.mq_msgsize), &prio);
      if (n < 0) return std::perror("mq_receive"), 1;
      std::printf("%u %.*s\n", prio, static_cast<int>(n), buffer);
      std::fflush(stdout);
    }
    std::free(buffer);
    return 0;
  }
  if (argc >= 3 && std::strcmp(argv[1], "msgsnd") == 0 && argc % 2 == 1) {
    const int q = msgget(static_cast<key_t>(std::atol(argv[2])), 0);
    if (q < 0) return std::perror("msgget"), 1;
    for (int i = 3; i + 1 < argc; i += 2) {
      struct {
        long type;
        char text[256];
      } m{};
      m.type = std::atol(argv[i]);
      const std::size_t n = std::strlen(argv[i + 1]) < sizeof m.text ? std::strlen(argv[i + 1]) : sizeof m.text;
      std::memcpy(m.text, argv[i + 1], n);
      if (msgsnd(q, &m, n, 0) != 0) return std::perror("msgsnd"), 1;
    }
    return 0;
  }
  if (argc == 5 && std::strcmp(argv[1], "msgrcv") == 0) {
    const int q = msgget(static_cast<key_t>(std::atol(argv[2])), 0);
    if (q < 0) return std::perror("msgget"), 1;
    for (int i = 0; i < std::atoi(argv[4]); ++i) {
      struct {
        long type;
        char text[8192];
      } m{};
      const ssize_t n = msgrcv(q, &m, sizeof m.text, std::atol(argv[3]), 0);
      if (n < 0) return std::perror("msgrcv"), 1;
      std::printf("%ld %.*s\n", m.type, static_cast<int>(n), m.text);
      std::fflush(stdout);
    }
    return 0;
  }
  std::fprintf(stderr, "usage: mq_peer send /name PRIO TEXT... | receive /name COUNT\n");
  return 2;
}
