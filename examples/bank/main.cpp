// bank: tell, ask and co_await. Accounts are actors; a teller actor moves money
// between two accounts with a coroutine handler that awaits both balances.
// Handlers that throw stop their actor, and the asker sees why.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>

#include <troupe/troupe.hpp>

using namespace std::chrono_literals;

struct deposit {
  std::int64_t cents;
};
struct withdraw {
  std::int64_t cents;
  using reply = bool;
};  // false if funds are short
struct balance {
  using reply = std::int64_t;
};
struct close_account {
  using reply = std::int64_t;
};
using account = troupe::protocol<deposit, withdraw, balance, close_account>;

struct account_actor : troupe::actor<account> {
  explicit account_actor(std::string owner) : owner_(std::move(owner)) {}
  void on(deposit d) {
    if (d.cents <= 0) throw std::invalid_argument("deposit of " + std::to_string(d.cents) + " cents");
    cents_ += d.cents;
  }
  bool on(withdraw w) {
    if (w.cents > cents_) return false;
    cents_ -= w.cents;
    return true;
  }
  std::int64_t on(balance) { return cents_; }
  std::int64_t on(close_account) {
    stop();
    return cents_;
  }
  void on_stop(const troupe::exit_reason& why) { std::cout << "  account " << owner_ << " closed: " << why << '\n'; }

 private:
  std::string owner_;
  std::int64_t cents_ = 0;
};

struct transfer {
  troupe::ref<account> from, to;
  std::int64_t cents;
  using reply = std::string;
};
using teller = troupe::protocol<transfer>;

struct teller_actor : troupe::actor<teller> {
  // While this coroutine awaits, the teller handles no other transfer
  // (await_policy::sequential, the default): transfers never interleave.
  troupe::task<std::string> on(transfer t) {
    const bool ok = co_await t.from.ask(withdraw{t.cents}, 1s);
    if (!ok) co_return "refused: insufficient funds";
    t.to.tell(deposit{t.cents});
    const std::int64_t left = co_await t.from.ask(balance{}, 1s);
    co_return "moved " + std::to_string(t.cents) + " cents, " + std::to_string(left) + " left";
  }
};

int main() {
  troupe::system sys;
  auto alice = sys.spawn<account_actor>("alice");
  auto bob = sys.spawn<account_actor>("bob");
  auto clerk = sys.spawn<teller_actor>();

  alice.tell(deposit{500});
  std::cout << "alice has " << alice.ask(balance{}, 1s).get() << " cents\n";
  std::cout << "transfer 200: " << clerk.ask(transfer{alice, bob, 200}, 1s).get() << '\n';
  std::cout << "transfer 900: " << clerk.ask(transfer{alice, bob, 900}, 1s).get() << '\n';
  std::cout << "bob has " << bob.ask(balance{}, 1s).get() << " cents\n";

  // A bad deposit throws inside bob's handler: bob stops with that reason, and
  // the next ask to bob fails with it instead of hanging.
  bob.tell(deposit{-1});
  troupe::expected<std::int64_t> gone = bob.ask(balance{}, 1s).try_get();
  std::cout << "bob after a bad deposit: " << (gone ? "still open" : gone.error().to_string()) << '\n';
  std::cout << "alice closes with " << alice.ask(close_account{}, 1s).get() << " cents\n";
}
