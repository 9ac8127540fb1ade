// Fuzz target: decoding messages from a peer (troupe/runtime/serialization.hpp
// and the per-protocol decoders of troupe/net/detail/remote.hpp). The first
// input byte picks a message type (fuzz_message_types.hpp), the rest is its
// encoding; past the type list it picks a message of fuzz_protocol, decoded
// through the protocol table as the transport does.
//
// Invariants: decoding never throws or reads out of bounds; it fails exactly
// when the reader records a failure (with a text); what decodes re-encodes to
// bytes that decode to an equal value and re-encode to themselves (and, per
// bytes_check, to the input itself); the protocol table's decoder agrees with
// from_bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "fuzz_check.hpp"
#include "fuzz_message_types.hpp"

namespace {

using troupe::fuzz::bytes_check;

template <class Case>
void check_message(std::span<const std::byte> bytes) {
  using T = typename Case::type;

  // Decoding fails exactly when the reader says why.
  T value{};
  troupe::wire_reader in(bytes);
  const bool decoded = troupe::decode(in, value);
  TROUPE_FUZZ_CHECK(decoded == !in.failed());
  if (!decoded) TROUPE_FUZZ_CHECK(!in.failure().empty());

  const auto whole = troupe::from_bytes<T>(bytes);
  TROUPE_FUZZ_CHECK(whole.has_value() == (decoded && in.remaining() == 0));
  if (!whole) {
    TROUPE_FUZZ_CHECK(whole.error().code() == troupe::errc::malformed_message);
    return;
  }

  const std::vector<std::byte> encoded = troupe::to_bytes(*whole);
  if constexpr (Case::check == bytes_check::exact) TROUPE_FUZZ_CHECK(std::ranges::equal(encoded, bytes));
  // Only the order of the elements can differ.
  if constexpr (Case::check == bytes_check::unordered) TROUPE_FUZZ_CHECK(encoded.size() == bytes.size());

  const auto again = troupe::from_bytes<T>(encoded);
  TROUPE_FUZZ_CHECK(again.has_value());
  TROUPE_FUZZ_CHECK(*again == *whole);
  // Encoding is deterministic except for unordered containers' iteration order.
  if constexpr (Case::check != bytes_check::unordered) TROUPE_FUZZ_CHECK(troupe::to_bytes(*again) == encoded);
}

template <std::size_t I>
void check_protocol_message(std::span<const std::byte> bytes) {
  using M = typename troupe::fuzz::fuzz_protocol::template message<I>;
  const troupe::detail::protocol_table& table = troupe::detail::protocol_table_of<troupe::fuzz::fuzz_protocol>();
  TROUPE_FUZZ_CHECK(table.messages.size() == troupe::fuzz::fuzz_protocol::size);
  const troupe::detail::message_entry& entry = table.messages[I];
  TROUPE_FUZZ_CHECK(entry.index == I && entry.type_id == troupe::type_id_of<M>() &&
                    table.find(entry.type_id) == &entry);

  // As the transport calls it for a tell (request id 0, so no reply sink and
  // no link needed).
  troupe::wire_reader in(bytes);
  const std::unique_ptr<troupe::detail::envelope> envelope(entry.decode(in, entry.index, nullptr, 0));
  TROUPE_FUZZ_CHECK((envelope == nullptr) == in.failed());
  const auto direct = troupe::from_bytes<M>(bytes);
  TROUPE_FUZZ_CHECK((envelope != nullptr) == direct.has_value());
  if (!envelope) return;
  TROUPE_FUZZ_CHECK(envelope->index == I);
  auto& message = static_cast<troupe::detail::message_envelope<M>&>(*envelope);
  TROUPE_FUZZ_CHECK(message.value == *direct);
  if constexpr (troupe::request<M>) TROUPE_FUZZ_CHECK(!message.reply.pending());
}

template <std::size_t... I>
void check_case(std::size_t selector, std::span<const std::byte> bytes, std::index_sequence<I...>) {
  (void)((selector == I ? (check_message<std::tuple_element_t<I, troupe::fuzz::message_cases>>(bytes), true) : false) ||
         ...);
}

template <std::size_t... I>
void check_protocol(std::size_t index, std::span<const std::byte> bytes, std::index_sequence<I...>) {
  (void)((index == I ? (check_protocol_message<I>(bytes), true) : false) || ...);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t selector = data[0] % troupe::fuzz::selector_count;
  const auto bytes = troupe::fuzz::bytes_of(data + 1, size - 1);
  if (selector < troupe::fuzz::case_count) {
    check_case(selector, bytes, std::make_index_sequence<troupe::fuzz::case_count>{});
  } else {
    check_protocol(selector - troupe::fuzz::case_count, bytes,
                   std::make_index_sequence<troupe::fuzz::fuzz_protocol::size>{});
  }
  return 0;
}
