// mq_feeder: the "outside program" of examples/ports — a plain C-API program
// that puts a few messages with priorities on a POSIX message queue.
//   mq_feeder /queue-name
#include <fcntl.h>
#include <mqueue.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mq_feeder /queue-name\n");
    return 2;
  }
  const mqd_t queue = mq_open(argv[1], O_WRONLY);
  if (queue == static_cast<mqd_t>(-1)) {
    std::perror("mq_open");
    return 1;
  }
  const struct {
    const char* text;
    unsigned priority;
  } messages[] = {{"routine report", 1}, {"disk almost full", 8}, {"backup done", 3}};
  for (const auto& m : messages) {
    if (mq_send(queue, m.text, std::strlen(m.text), m.priority) != 0) {
      std::perror("mq_send");
      return 1;
    }
  }
  mq_close(queue);
  return 0;
}
