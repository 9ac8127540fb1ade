// ping_pong: two actors bounce a ball; each ball carries the ref of the player
// who hit it, so the receiver knows where to send it back (refs travel inside
// messages). The main thread waits for the result on a scoped inbox.
//
//   ping_pong [round_trips]
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>

#include <troupe/troupe.hpp>

struct ball;
using player = troupe::protocol<ball>;
struct ball {
  std::int64_t hits;
  troupe::ref<player> from;
};

struct finished {
  std::int64_t hits;
};
using scoreboard = troupe::protocol<finished>;

struct player_actor : troupe::actor<player> {
  player_actor(std::int64_t limit, troupe::ref<scoreboard> board) : limit_(limit), board_(std::move(board)) {}
  void on(const ball& b) {
    if (b.hits == limit_) {
      board_.tell(finished{b.hits});
      return;
    }
    b.from.tell(ball{b.hits + 1, self()});
  }

 private:
  std::int64_t limit_;
  troupe::ref<scoreboard> board_;
};

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::int64_t round_trips = argc > 1 ? std::atoll(argv[1]) : 1'000'000;
  troupe::system sys;
  troupe::scoped<scoreboard> board{sys};
  auto ping = sys.spawn<player_actor>(2 * round_trips, board.self());
  auto pong = sys.spawn<player_actor>(2 * round_trips, board.self());
  const auto start = std::chrono::steady_clock::now();
  ping.tell(ball{0, pong});  // as if pong had served
  auto result = board.receive<finished>(60s);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  if (!result) {
    std::cerr << "ping_pong: " << result.error() << '\n';
    return 1;
  }
  std::cout << "ping_pong: " << result->hits / 2 << " round trips between " << ping << " and " << pong << " in "
            << took.count() << " s (" << static_cast<double>(result->hits) / took.count() / 1e6 << " M messages/s)\n";
}
